"""Writers for a :class:`~kharness.result.model.Result`: the JSON document and the terminal summary."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kharness.result.model import Result
from kharness.result.status import style


def write_json(result: Result, path: Path) -> None:
    """The result as JSON in ``path`` (replaced whole), or on stdout when ``path`` is ``-``."""
    if str(path) == "-":
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _status(s: str) -> Text:
    return Text(s.upper() if s in ("pass", "fail", "error") else s, style=style(s))


def print_summary(result: Result, console: Console) -> None:
    k = (result.kernel.release if result.kernel else "") or result.kernel_wanted
    head = Text.assemble(Text(result.status.upper(), style=style(result.status)), "  ", (result.module_dir, "bold"),
                         f"  on {result.target} / {k}",
                         f" ({result.accelerator})" if result.accelerator else "",
                         f"  {result.duration:.1f}s")
    console.print(head)
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    t.add_column("phase")
    t.add_column("status")
    t.add_column("time", justify="right")
    t.add_column("")
    for p in result.phases:
        t.add_row(p.name, _status(p.status), f"{p.duration:.2f}s" if p.status != "skipped" else "",
                  Text(p.message[:110]))
    console.print(t)
    if result.checks:
        c = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        c.add_column("check")
        c.add_column("status")
        c.add_column("")
        for ch in result.checks:
            c.add_row(ch.name[:60], _status(ch.status), Text(ch.message[:100]))
        console.print(c)
    if result.build is not None and result.build.built_by_note:
        console.print(Text.assemble(("build: ", "bold"), result.build.built_by_note))
    for f in result.findings:
        console.print(Text.assemble(("kernel: ", "red bold"), f"[{f.phase}] {f.kind}: {f.summary}"))
    if result.error:
        console.print(Text.assemble(("error: ", "magenta bold"), result.error.get("message", "")))
    elif result.status == "fail" and result.summary:
        console.print(Text.assemble(("failed: ", "red bold"), result.summary))
    elif result.status == "skipped":
        console.print(Text.assemble(("skipped: ", "bold"), result.summary.removeprefix("skipped: "),
                                    " (not a failure: exit 0)"))
