"""``kharness watch DIR``: rebuild and rerun on every save.

Polls the module directory's sources (no inotify dependency; a poll of a few dozen files every
0.2 s costs nothing) and reruns the whole pipeline in this process, so the Python start-up is paid
once; the guest is restored from its ready snapshot each time, so a fresh kernel is still used
for every run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from kharness.build.kbuild import source_files
from kharness.result.model import Result


def fingerprint(directory: Path) -> tuple:
    out = []
    for p in source_files(directory):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def watch(directory: Path, run_once: Callable[[], Result], report: Callable[[Result, float], None],
          interval: float = 0.2, settle: float = 0.15, max_runs: int | None = None) -> int:
    """Run, then rerun whenever a source changes; returns the number of runs (for tests)."""
    runs = 0
    last = fingerprint(directory)
    while True:
        t = time.monotonic()
        report(run_once(), time.monotonic() - t)
        runs += 1
        if max_runs is not None and runs >= max_runs:
            return runs
        while True:
            time.sleep(interval)
            now = fingerprint(directory)
            if now != last:
                time.sleep(settle)          # editors write in several steps
                last = fingerprint(directory)
                break
