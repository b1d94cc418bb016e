#!/usr/bin/env python3
"""What loading the kernel's own modules costs a restored run (issue #15: within 0.3 s).

    .venv/bin/python bench/bench_deps.py [--runs 5] [--kernel 6.1] [--module NAME=DIR ...] [--json]

Runs `python -m kharness run DIR --json ... -q` for each case, restored from the ready snapshot
(a first, uncounted run of each builds the module and makes the snapshot if there is none), the
cases' runs interleaved so that a busy host weighs on all alike, and prints the medians:

* none: examples/hello as it is (no dependency);
* 3 requires: the same module with `[module] requires = ["i2c-stub chip_addr=0x48", "i2c-dev",
  "uinput"]` (three small x86_64 modules with no dependencies of their own, 96 KiB);
* v4l2_dep: tests/fixtures/modules/v4l2_dep, whose modinfo needs videodev (and mc: 780 KiB),
  and whose checks differ from hello's (compare its load and unload phases, not its total).

`--module NAME=DIR` adds a case. Columns: the whole command's wall time; the boot phase (a restored
guest gets this run's files there, the dependencies' included); the load and unload phases
(their insmod and rmmod); the difference of the total from "none". Wall-clock figures on
whatever machine runs this: a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRES = ['"i2c-stub chip_addr=0x48"', '"i2c-dev"', '"uinput"']


def with_requires(src: Path, dst: Path) -> Path:
    """A copy of ``src`` (a module directory with a kharness.toml that has a [module] table)
    whose [module] also requires ``REQUIRES``."""
    shutil.copytree(src, dst)
    toml = dst / "kharness.toml"
    text = toml.read_text()
    if "\n[module]\n" not in text:
        sys.exit(f"{toml}: no [module] table to add requires to")
    toml.write_text(text.replace("\n[module]\n", f"\n[module]\nrequires = [{', '.join(REQUIRES)}]\n", 1))
    return dst


def one_run(module: Path, kernel: str, out: Path) -> dict[str, float]:
    env = dict(os.environ, KHARNESS_PROGRESS="0")
    argv = [sys.executable, "-m", "kharness", "run", str(module), "--kernel", kernel, "--json", str(out), "-q"]
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    total = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"kharness run {module} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    r = json.loads(out.read_text())
    phases = {ph["name"]: ph["duration"] for ph in r["phases"]}
    deps = sum(len(v) for v in (r.get("dependencies") or {}).values())
    return {"total": total, "boot": phases["boot"], "load": phases["load"], "unload": phases["unload"], "deps": deps,
            "snapshot": r.get("boot_mode") == "snapshot", "note": r.get("boot_mode_note")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--module", action="append", default=[], metavar="NAME=DIR", help="another case")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cases = {"none": ROOT / "examples" / "hello",
                 "3 requires": with_requires(ROOT / "examples" / "hello", tmp / "hello"),
                 "v4l2_dep": ROOT / "tests" / "fixtures" / "modules" / "v4l2_dep"}
        for spec in args.module:
            name, eq, path = spec.partition("=")
            if not eq or not Path(path).is_dir():
                sys.exit(f"--module {spec!r}: give NAME=DIR, DIR a module directory")
            cases[name] = Path(path).resolve()
        out = tmp / "r.json"
        for module in cases.values():
            one_run(module, args.kernel, out)          # builds, makes the snapshot, warms caches
        rows: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, module in cases.items():
                r = one_run(module, args.kernel, out)
                if not r["snapshot"]:
                    sys.exit(f"{name}: the run was not restored from a snapshot ({r['note']})")
                rows[name].append(r)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("total", "boot", "load", "unload", "deps")}
           for name, rs in rows.items()}
    base = med["none"]["total"]
    if args.json:
        print(json.dumps(med, indent=1))
        return
    print(f"`kharness run` restored from its snapshot, {args.kernel}, median of {args.runs} (seconds):\n")
    print("| case | dependencies | total | boot | load | unload | total - none |\n|---|---|---|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m['deps']:.0f} | {m['total']:.3f} | {m['boot']:.3f} | {m['load']:.3f} | "
              f"{m['unload']:.3f} | {m['total'] - base:+.3f} |")


if __name__ == "__main__":
    main()
