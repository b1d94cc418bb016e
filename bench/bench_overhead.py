#!/usr/bin/env python3
"""Where the host time of a restored `kharness run` goes, outside the run's phases.

    .venv/bin/python bench/bench_overhead.py [--runs 5] [--module examples/hello] [--kernel 6.1]
                                             [--compare OTHER_CHECKOUT ...]

Runs `python -m kharness run MODULE --json ... -q` (the ready snapshot restored, the cache warm:
run it once first) and splits each run's wall-clock time into:

* interpreter: process start to the first line of Python (interpreter and site start-up);
* imports + CLI: from there to the moment the CLI calls the runner (typer, the command's imports,
  option parsing);
* runner outside phases: the runner's own time that no phase counts (checking the options,
  planning the guest, teardown of the guest and run directory);
* phases: the sum of the phases' durations in the result (build ... unload);
* result + summary: from the runner's return to the end of the CLI (result JSON, summary);
* interpreter exit: from there to the process's end (interpreter shutdown).

"host overhead" is everything but the phases. The child is the ordinary `python -m kharness`,
with a few time stamps taken around it (the runner's `run` wrapped once it is imported, so the
import order is the CLI's own). CLOCK_MONOTONIC is system-wide, so parent and child stamps
compare. Figures are wall-clock on whatever machine runs this: a benchmark, never a test.
Bytecode caching is left on (PYTHONDONTWRITEBYTECODE removed), as an installed kharness has it.

``--compare DIR`` (repeatable) measures other checkouts of kharness too (e.g. ``git worktree add
/tmp/before HEAD~1``), their runs interleaved with this one's so that a busy host weighs on all
alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child: stamp the interpreter's first line, wrap kharness.runner.run when it is first
# imported (by the CLI, lazily), run `python -m kharness` as usual, stamp the end of main.
CHILD = r"""
import time
T = {"start": time.monotonic()}
import json, os, runpy, sys
from importlib.abc import MetaPathFinder

class _Wrap(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "kharness.runner":
            return None
        sys.meta_path.remove(self)
        import importlib.util
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            inner = module.run

            def run(opts):
                T["run_start"] = time.monotonic()
                try:
                    return inner(opts)
                finally:
                    T["run_end"] = time.monotonic()
            module.run = run
        spec.loader.exec_module = exec_and_wrap
        return spec

sys.meta_path.insert(0, _Wrap())
sys.argv = ["kharness", *sys.argv[2:]]
stamps = os.environ["KH_BENCH_STAMPS"]
try:
    runpy.run_module("kharness", run_name="__main__", alter_sys=True)
finally:
    T["main_end"] = time.monotonic()
    with open(stamps, "w") as f:
        json.dump(T, f)
"""


def one_run(root: Path, module: Path, kernel: str, tmp: Path) -> dict[str, float]:
    out, stamps = tmp / "r.json", tmp / "stamps.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(KHARNESS_PROGRESS="0", KH_BENCH_STAMPS=str(stamps))
    argv = [sys.executable, "-c", CHILD, "-", "run", str(module), "--kernel", kernel, "--json", str(out), "-q"]
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, cwd=root, capture_output=True, text=True)   # cwd: whose kharness
    t_end = time.monotonic()
    if p.returncode != 0:
        sys.exit(f"kharness run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    r, s = json.loads(out.read_text()), json.loads(stamps.read_text())
    if r.get("boot_mode") != "snapshot":
        sys.exit(f"the run was not restored from a snapshot ({r.get('boot_mode')}: {r.get('boot_mode_note')}); "
                 "run `kharness image build --snapshot` (or one `kharness run`) first")
    phases = sum(ph["duration"] for ph in r["phases"])
    runner = s["run_end"] - s["run_start"]
    return {
        "interpreter": s["start"] - t0,
        "imports + CLI": s["run_start"] - s["start"],
        "runner outside phases": runner - phases,
        "phases": phases,
        "result + summary": s["main_end"] - s["run_end"],
        "interpreter exit": t_end - s["main_end"],
        "host overhead": (t_end - t0) - phases,
        "total": t_end - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--module", type=Path, default=ROOT / "examples" / "hello")
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--compare", type=Path, metavar="DIR", action="append", default=[],
                    help="another kharness checkout to measure alike (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args()
    roots = {str(d): d.resolve() for d in args.compare} | {str(ROOT): ROOT}
    module = args.module.resolve()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    with tempfile.TemporaryDirectory() as d:
        for root in roots.values():
            one_run(root, module, args.kernel, Path(d))   # warms the bytecode cache and the page cache
        for _ in range(args.runs):
            for name, root in roots.items():
                rows[name].append(one_run(root, module, args.kernel, Path(d)))
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rows.items()}
    if args.json:
        print(json.dumps(med if args.compare else med[str(ROOT)], indent=1))
        return
    print(f"`kharness run {module.name}` restored from its snapshot, median of {args.runs} (seconds):\n")
    if not args.compare:
        this = rows[str(ROOT)]
        print("| part | median | min | max |\n|---|---|---|---|")
        for k in this[0]:
            xs = [r[k] for r in this]
            print(f"| {k} | {statistics.median(xs):.3f} | {min(xs):.3f} | {max(xs):.3f} |")
        return
    print("| part | " + " | ".join(roots) + " |\n|---|" + "---|" * len(roots))
    for k in med[str(ROOT)]:
        print(f"| {k} | " + " | ".join(f"{med[name][k]:.3f}" for name in roots) + " |")


if __name__ == "__main__":
    main()
