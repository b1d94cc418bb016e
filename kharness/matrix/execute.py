"""Run the cells: each a ``kharness run`` subprocess (its own QEMU, its own failure domain),
``-j`` at a time, with a live view."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.markup import escape

from kharness import ui
from kharness.cells import Cell
from kharness.matrix.supervise import Supervisor
from kharness.result.status import style as status_style

# A cell's deadline, derived from what its `kharness run` itself may wait for. Generous on purpose:
# it only catches a wedged cell (a hang kharness's own timeouts missed), not a slow one.
BUILD_ALLOWANCE = 3600.0    # a cold cache downloads a kernel, or builds one from source (ppc64): an hour
BOOT_ALLOWANCE = 2 * 300.0  # `kharness run`'s default --boot-timeout, twice: a snapshot boot, then a cold one
STEP_ALLOWANCE = 30         # guest steps (insmod, checks and their repeats, rmmod, health looks) at --timeout
DEFAULT_STEP = 60.0         # `kharness run`'s default --timeout


def cell_deadline(step_timeout: float | None) -> float:
    """Seconds one cell may take before it is killed: build, boots and steps at their own limits."""
    return BUILD_ALLOWANCE + BOOT_ALLOWANCE + STEP_ALLOWANCE * (step_timeout or DEFAULT_STEP)


@dataclass
class CellResult:
    cell: Cell
    status: str                 # pass | fail | error | skipped (its module excludes it, or fail-fast)
    summary: str = ""
    duration: float = 0.0
    release: str = ""
    accelerator: str = ""
    files: dict = field(default_factory=dict)   # name -> path relative to the output directory

    def to_dict(self) -> dict:
        return {"target": self.cell.target, "kernel": self.cell.kernel, "id": self.cell.id,
                "status": self.status, "summary": self.summary, "duration": round(self.duration, 2),
                "release": self.release, "accelerator": self.accelerator, "files": self.files}


def cell_argv(module_dir: Path, cell: Cell, result_json: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "kharness", "run", str(module_dir), "--target", cell.target,
            "--kernel", cell.kernel, "--json", str(result_json), "-q", *extra]


def _write_timeout_result(path: Path, module_dir: Path, cell: Cell, deadline: float, duration: float) -> None:
    """The result a killed cell could not write: an infrastructure error naming the deadline."""
    from kharness.result.model import Result
    from kharness.result.writers import write_json

    message = (f"the cell did not finish within its deadline of {deadline:g}s and was killed with its "
               f"process group (--cell-timeout sets the deadline)")
    r = Result(module_dir=str(module_dir), target=cell.target, kernel_wanted=cell.kernel, status="error",
               summary=message, error={"kind": "infrastructure", "message": message}, duration=duration)
    write_json(r, path)


def run_cell(module_dir: Path, cell: Cell, out: Path, extra: list[str], deadline: float,
             supervisor: Supervisor | None = None) -> CellResult:
    d = out / "cells" / cell.id
    d.mkdir(parents=True, exist_ok=True)
    (d / "result.json").unlink(missing_ok=True)   # a previous matrix's verdict must not pass for this one's
    argv = cell_argv(module_dir, cell, d / "result.json", extra)
    t = time.monotonic()
    with open(d / "output.log", "w") as log:
        rc = (supervisor or Supervisor()).run(argv, log, deadline, env={**os.environ, "KHARNESS_PROGRESS": "0"})
        if rc is None:
            log.write(f"\nkharness matrix: the cell exceeded its deadline of {deadline:g}s; "
                      f"its process group was killed\n")
    dur = time.monotonic() - t
    files = {"output": f"cells/{cell.id}/output.log"}
    if rc is None:
        _write_timeout_result(d / "result.json", module_dir, cell, deadline, dur)
    try:
        r = json.loads((d / "result.json").read_text())
    except (OSError, ValueError):
        tail = (d / "output.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
        return CellResult(cell, "error", f"kharness run exited {rc}: {tail[0][:300]}", dur, files=files)
    files["result"] = f"cells/{cell.id}/result.json"
    (d / "dmesg.log").write_text("".join(f"--- {k} ---\n{v}" for k, v in (r.get("dmesg") or {}).items()))
    files["dmesg"] = f"cells/{cell.id}/dmesg.log"
    (d / "console.log").write_text((r.get("artifacts") or {}).get("console_log_tail", ""))
    files["console"] = f"cells/{cell.id}/console.log"
    status = r.get("status") if r.get("status") in ("pass", "fail", "error", "skipped") else "error"
    return CellResult(cell, status, r.get("summary", ""), r.get("duration", dur),
                      (r.get("kernel") or {}).get("release", ""), r.get("accelerator") or "", files)


def run_all(module_dir: Path, cells: list[Cell], out: Path, jobs: int, fail_fast: bool,
            extra: list[str], deadline: float) -> list[CellResult]:
    """Every cell, each bounded by ``deadline`` seconds (so the wait for all of them is bounded too)."""
    results: dict[Cell, CellResult] = {}
    stop = threading.Event()
    lock = threading.Lock()
    supervisor = Supervisor()

    def one(cell: Cell) -> CellResult:
        if stop.is_set():
            return CellResult(cell, "skipped", "not run: --fail-fast after an earlier failure")
        r = run_cell(module_dir, cell, out, extra, deadline, supervisor)
        if fail_fast and r.status not in ("pass", "skipped"):
            stop.set()
        return r

    with ui.progress_bar(f"matrix: {len(cells)} cell(s), {jobs} at a time", len(cells)) as advance, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(one, c): c for c in cells}
        try:
            for f in as_completed(futures):
                r = f.result()
                with lock:
                    results[r.cell] = r
                    advance(1)
                    ui.info(f"[{status_style(r.status)}]{r.status.upper():7}[/] {r.cell.id:18} "
                            f"{r.duration:6.1f}s  {escape(r.summary[:100])}")
        except BaseException:
            # Ctrl-C (or a bug): the pool would wait for every running cell; stop them instead.
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            supervisor.interrupt_all()
            raise
    return [results[c] for c in cells]
