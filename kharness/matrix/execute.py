"""Run the cells: each a ``kharness run`` subprocess (its own QEMU, its own failure domain),
``-j`` at a time, with a live view."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from kharness import ui
from kharness.matrix.plan import Cell


@dataclass
class CellResult:
    cell: Cell
    status: str                 # pass | fail | error | skipped (fail-fast)
    summary: str = ""
    duration: float = 0.0
    release: str = ""
    accelerator: str = ""
    files: dict = field(default_factory=dict)   # name -> path relative to the output directory

    def to_dict(self) -> dict:
        return {"target": self.cell.target, "kernel": self.cell.kernel, "id": self.cell.id,
                "status": self.status, "summary": self.summary, "duration": round(self.duration, 2),
                "release": self.release, "accelerator": self.accelerator, "files": self.files}


def run_cell(module_dir: Path, cell: Cell, out: Path, extra: list[str]) -> CellResult:
    d = out / "cells" / cell.id
    d.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "kharness", "run", str(module_dir), "--target", cell.target,
            "--kernel", cell.kernel, "--json", str(d / "result.json"), "-q", *extra]
    t = time.monotonic()
    with open(d / "output.log", "w") as log:
        p = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env={**__import__("os").environ,
                                                                           "KHARNESS_PROGRESS": "0"})
    dur = time.monotonic() - t
    files = {"output": f"cells/{cell.id}/output.log"}
    try:
        r = json.loads((d / "result.json").read_text())
    except (OSError, ValueError):
        tail = (d / "output.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return CellResult(cell, "error", f"kharness run exited {p.returncode}: {tail[0][:300]}", dur, files=files)
    files["result"] = f"cells/{cell.id}/result.json"
    (d / "dmesg.log").write_text("".join(f"--- {k} ---\n{v}" for k, v in (r.get("dmesg") or {}).items()))
    files["dmesg"] = f"cells/{cell.id}/dmesg.log"
    (d / "console.log").write_text((r.get("artifacts") or {}).get("console_log_tail", ""))
    files["console"] = f"cells/{cell.id}/console.log"
    return CellResult(cell, r.get("status", "error"), r.get("summary", ""), r.get("duration", dur),
                      (r.get("kernel") or {}).get("release", ""), r.get("accelerator") or "", files)


def run_all(module_dir: Path, cells: list[Cell], out: Path, jobs: int, fail_fast: bool,
            extra: list[str]) -> list[CellResult]:
    results: dict[Cell, CellResult] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def one(cell: Cell) -> CellResult:
        if stop.is_set():
            return CellResult(cell, "skipped", "not run: --fail-fast after an earlier failure")
        r = run_cell(module_dir, cell, out, extra)
        if fail_fast and r.status != "pass":
            stop.set()
        return r

    style = {"pass": "green", "fail": "red", "error": "magenta", "skipped": "dim"}
    with ui.progress_bar(f"matrix: {len(cells)} cell(s), {jobs} at a time", len(cells)) as advance, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, c): c for c in cells}
        for f in as_completed(futures):
            r = f.result()
            with lock:
                results[r.cell] = r
                advance(1)
                ui.info(f"[{style.get(r.status, '')}]{r.status.upper():7}[/] {r.cell.id:18} "
                        f"{r.duration:6.1f}s  {r.summary[:100]}")
    return [results[c] for c in cells]
