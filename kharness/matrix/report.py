"""A matrix's results, written: terminal grid, summary JSON, JUnit XML, self-contained HTML.
Pure functions of the cell results (and an optional baseline): no guest, no subprocess."""

from __future__ import annotations

import html
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from rich.table import Table

from kharness.matrix.execute import CellResult
from kharness.result.status import HTML_COLOUR, STYLE

SCHEMA = "kharness/matrix/v1"
REPORT_FILES = ("summary.json", "junit.xml", "index.html")
# A console's colour and cursor sequences (ECMA-48): CSI (ESC [ ... final), OSC (ESC ] ... BEL or
# ESC \), character-set selections (ESC ( B, as tput sgr0 prints) and the two-character escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]+[0-~]|[0-Z\\-~])")
# What XML 1.0 forbids (C0 controls but tab, newline and CR; lone surrogates; U+FFFE/U+FFFF), plus DEL
# and the C1 controls, which HTML forbids as raw characters.
_UNFIT = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: object) -> str:
    """Text fit for XML 1.0 and HTML: colour sequences dropped, any other control character shown
    as ``\\xNN`` (kept visible: a NUL in a summary is a clue, not noise)."""
    def show(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    return _UNFIT.sub(show, _ANSI.sub("", str(text)))




def compare(results: list[CellResult], baseline: dict | None) -> dict[str, str]:
    """cell id -> "newly broken" | "fixed" | "still failing" | "" against a previous summary."""
    if not baseline:
        return {}
    before = {c["id"]: c["status"] for c in baseline.get("cells", [])}
    out = {}
    for r in results:
        was = before.get(r.cell.id)
        if was is None or r.status == "skipped":
            out[r.cell.id] = ""
        elif was == "pass" and r.status != "pass":
            out[r.cell.id] = "newly broken"
        elif was != "pass" and r.status == "pass":
            out[r.cell.id] = "fixed"
        elif r.status != "pass":
            out[r.cell.id] = "still failing"
        else:
            out[r.cell.id] = ""
    return out


def summary(module_dir: str, results: list[CellResult], wall: float, changes: dict[str, str]) -> dict:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("pass", "fail", "error", "skipped")}
    cells = [dict(r.to_dict(), change=changes.get(r.cell.id, "")) for r in results]
    cells.sort(key=lambda c: (c["change"] != "newly broken",))
    return {"schema": SCHEMA, "module_dir": module_dir, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_seconds": round(wall, 1), "counts": counts, "cells": cells}


def _axes(results: list[CellResult]) -> tuple[list[str], list[str]]:
    targets, kernels = [], []
    for r in results:
        if r.cell.target not in targets:
            targets.append(r.cell.target)
        if r.cell.kernel not in kernels:
            kernels.append(r.cell.kernel)
    kernels.sort(key=lambda s: tuple(map(int, s.split("."))))
    return targets, kernels


def grid(results: list[CellResult], changes: dict[str, str]) -> Table:
    targets, kernels = _axes(results)
    by = {(r.cell.target, r.cell.kernel): r for r in results}
    t = Table(title="kharness matrix (targets x kernels)")
    t.add_column("target")
    for k in kernels:
        t.add_column(k, justify="center")
    for tg in targets:
        row = []
        for k in kernels:
            r = by.get((tg, k))
            if r is None:
                row.append("[dim]-[/dim]")
                continue
            mark = " [bold red]NEW[/bold red]" if changes.get(r.cell.id) == "newly broken" else ""
            row.append(f"[{STYLE[r.status]}]{r.status.upper()}[/] {r.duration:.0f}s{mark}")
        t.add_row(tg, *row)
    return t


def junit(results: list[CellResult], path: Path) -> None:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("fail", "error", "skipped")}
    suite = ET.Element("testsuite", name="kharness.matrix", tests=str(len(results)), failures=str(counts["fail"]),
                       errors=str(counts["error"]), skipped=str(counts["skipped"]),
                       time=f"{sum(r.duration for r in results):.2f}")
    # Every string through clean(): ElementTree writes control characters as they are, and one
    # ESC from a console line makes the whole file unreadable to a CI's JUnit parser.
    for r in results:
        tc = ET.SubElement(suite, "testcase", classname=clean(f"matrix.{r.cell.target}"), name=clean(r.cell.id),
                           time=f"{r.duration:.2f}")
        props = ET.SubElement(tc, "properties")
        for k, v in (("target", r.cell.target), ("kernel", r.cell.kernel), ("release", r.release),
                     ("accelerator", r.accelerator)):
            ET.SubElement(props, "property", name=k, value=clean(v))
        text = clean(r.summary)
        if r.status == "fail":
            ET.SubElement(tc, "failure", message=text[:500]).text = text
        elif r.status == "error":
            ET.SubElement(tc, "error", message=text[:500]).text = text
        elif r.status == "skipped":
            ET.SubElement(tc, "skipped", message=text)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def html_report(module_dir: str, results: list[CellResult], changes: dict[str, str], wall: float) -> str:
    """One self-contained page: a colour-coded grid, each cell linking to its result and logs."""
    targets, kernels = _axes(results)
    by = {(r.cell.target, r.cell.kernel): r for r in results}
    def e(text: object) -> str:
        return html.escape(clean(text))
    rows = []
    for tg in targets:
        tds = []
        for k in kernels:
            r = by.get((tg, k))
            if r is None:
                tds.append('<td class="none">&ndash;</td>')
                continue
            links = " ".join(f'<a href="{e(p)}">{e(n)}</a>' for n, p in r.files.items())
            new = '<div class="new">newly broken</div>' if changes.get(r.cell.id) == "newly broken" else ""
            tds.append(f'<td class="cell" style="background:{HTML_COLOUR.get(r.status, HTML_COLOUR["error"])}" title="{e(r.summary)}">'
                       f'<div class="st">{e(r.status.upper())}</div><div>{r.duration:.1f}s &middot; '
                       f'{e(r.release or r.cell.kernel)}</div>{new}<div class="links">{links}</div></td>')
        rows.append(f"<tr><th>{e(tg)}</th>{''.join(tds)}</tr>")
    head = "".join(f"<th>{e(k)}</th>" for k in kernels)
    counts = ", ".join(f"{sum(1 for r in results if r.status == s)} {s}" for s in ("pass", "fail", "error", "skipped"))
    details = "".join(f"<tr><td>{e(r.cell.id)}</td><td>{e(r.status)}</td><td>{e(changes.get(r.cell.id, ''))}</td>"
                      f"<td>{e(r.summary)}</td></tr>" for r in results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kharness matrix: {e(module_dir)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #212121; }}
table.grid {{ border-collapse: collapse; }}
.grid th, .grid td {{ border: 1px solid #bdbdbd; padding: .5em .8em; text-align: center; }}
td.cell {{ color: white; min-width: 9em; }}
td.cell a {{ color: white; font-size: .8em; }}
.st {{ font-weight: bold; font-size: 1.1em; }}
.new {{ background: #ffeb3b; color: black; font-size: .8em; margin-top: .2em; }}
td.none {{ background: #eeeeee; }}
table.details td {{ padding: .2em .6em; border-bottom: 1px solid #eee; text-align: left; }}
</style></head><body>
<h1>kharness matrix</h1>
<p>module <code>{e(module_dir)}</code> &middot; {len(results)} cells: {counts} &middot; wall {wall:.0f}s</p>
<table class="grid"><tr><th>target \\ kernel</th>{head}</tr>
{''.join(rows)}
</table>
<h2>Cells</h2><table class="details"><tr><th>cell</th><th>status</th><th>change</th><th>summary</th></tr>{details}</table>
</body></html>
"""


def write_all(out: Path, module_dir: str, results: list[CellResult], wall: float, baseline: dict | None) -> dict:
    changes = compare(results, baseline)
    s = summary(module_dir, results, wall, changes)
    (out / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    junit(results, out / "junit.xml")
    (out / "index.html").write_text(html_report(module_dir, results, changes, wall))
    return s
