#!/usr/bin/env python3
"""Benchmark `kharness watch`: how soon after a save, and after its build, the verdict is on screen.

    .venv/bin/python bench/bench_watch.py [--target x86_64] [--kernel 6.1] [--edits 5]

Watches a copy of examples/hello, edits its source N times (a comment, so every edit is a real
rebuild), and for each edit records: save -> verdict on screen, the build phase's own time, and
their difference (the verdict after the build finished: snapshot restore, load, checks, unload).
The first run (which may build an image or save a snapshot) is not counted.

Timings are wall-clock on whatever machine runs this: a benchmark, never a test assertion.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
VERDICT = r"run took ([0-9.]+)s \(([\w ]+)\); watching"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="x86_64")
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--edits", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mod = Path(tmp) / "hello"
        shutil.copytree(ROOT / "examples/hello", mod)
        src = (mod / "hello.c").read_text()
        env = dict(os.environ, KHARNESS_PROGRESS="0", NO_COLOR="1", TERM="dumb")
        child = pexpect.spawn(sys.executable, ["-m", "kharness", "watch", str(mod), "--target", a.target,
                                               "--kernel", a.kernel, "--runs", str(a.edits + 1)],
                              cwd=str(ROOT), env=env, encoding="utf-8", timeout=900, dimensions=(50, 160))
        child.expect(VERDICT)
        rows = []
        for i in range(a.edits):
            time.sleep(0.5)
            saved = time.monotonic()
            (mod / "hello.c").write_text(src + f"\n/* edit {i} */\n")
            child.expect(VERDICT)
            shown = time.monotonic() - saved
            out = child.before
            m = re.search(r"^\s*build\s+PASS\s+([0-9.]+)s", out, re.M)
            if m is None or not re.search(r"^\s*PASS\s", out, re.M):
                sys.exit(f"edit {i}: the run did not pass:\n{out}")
            build = float(m.group(1))
            rows.append((shown, build, shown - build, child.match.group(2)))
            print(f"edit {i + 1}: save -> verdict {shown:.2f}s, build {build:.2f}s, "
                  f"verdict after the build {shown - build:.2f}s ({child.match.group(2)})")
        child.expect(pexpect.EOF)
    for label, col in (("save -> verdict", 0), ("build", 1), ("verdict after the build", 2)):
        v = [r[col] for r in rows]
        print(f"{label:>24}: median {statistics.median(v):.2f}s (min {min(v):.2f}, max {max(v):.2f})")


if __name__ == "__main__":
    main()
