#!/usr/bin/env python3
"""What one program check costs a restored run (issue #16: within 0.3 s).

    .venv/bin/python bench/bench_program.py [--runs 5] [--target x86_64] [--kernel 6.1] [--json]

Runs `python -m kharness run DIR --json ... -q` restored from the ready snapshot (a first,
uncounted run of each case builds the module and the program and makes the snapshot if there is
none), the cases' runs interleaved so that a busy host weighs on all alike, and prints medians:

* none: examples/hello as it is;
* program: the same module with one `kind = "program"` check, a C program (static, for the
  target) that prints a line: compiled once, then taken from the program cache; its binary
  rides along with the module to the restored guest (or, over a slow channel, is in an image
  with its own snapshot: kharness.runner.image.rides_along).

Columns: the whole command's wall time; the build phase (a cached program adds no compile); the
boot phase (the restored guest gets the run's files there); the check phase; the difference of
the total from "none". Wall-clock figures on whatever machine runs this: a benchmark, never a test.
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

PROGRAM = """#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>

int main(void)
{
\tchar buf[64];
\tint fd = open("/proc/modules", O_RDONLY);
\tssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

\tprintf("read %s\\n", n > 0 ? "ok" : "failed");
\treturn n > 0 ? 0 : 1;
}
"""

CHECK = """
[[check]]
name = "a program of the module's own"
kind = "program"
source = "test/probe.c"
expect_stdout = 'read ok'
"""


def with_program(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "test").mkdir()
    (dst / "test" / "probe.c").write_text(PROGRAM)
    with open(dst / "kharness.toml", "a") as f:
        f.write(CHECK)
    return dst


def one_run(module: Path, target: str, kernel: str, out: Path) -> dict:
    env = dict(os.environ, KHARNESS_PROGRESS="0")
    argv = [sys.executable, "-m", "kharness", "run", str(module), "--target", target, "--kernel", kernel,
            "--json", str(out), "-q"]
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    total = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"kharness run {module} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    r = json.loads(out.read_text())
    phases = {ph["name"]: ph["duration"] for ph in r["phases"]}
    return {"total": total, "build": phases["build"], "boot": phases["boot"], "check": phases["check"],
            "snapshot": r.get("boot_mode") == "snapshot", "note": r.get("boot_mode_note"),
            "cached": all(p.get("cached") for p in r.get("programs") or [])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--target", default="x86_64")
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cases = {"none": ROOT / "examples" / "hello",
                 "program": with_program(ROOT / "examples" / "hello", tmp / "hello")}
        out = tmp / "r.json"
        for module in cases.values():
            one_run(module, args.target, args.kernel, out)     # builds, makes the snapshot, warms caches
        rows: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, module in cases.items():
                r = one_run(module, args.target, args.kernel, out)
                if not r["snapshot"]:
                    sys.exit(f"{name}: the run was not restored from a snapshot ({r['note']})")
                if not r["cached"]:
                    sys.exit(f"{name}: the program was compiled again on a rerun")
                rows[name].append(r)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("total", "build", "boot", "check")}
           for name, rs in rows.items()}
    base = med["none"]["total"]
    if args.json:
        print(json.dumps(med, indent=1))
        return
    print(f"`kharness run` on {args.target} restored from its snapshot, {args.kernel}, median of {args.runs} "
          "(seconds):\n")
    print("| case | total | build | boot | check | total - none |\n|---|---|---|---|---|---|")
    for name, m in med.items():
        print(f"| {name} | {m['total']:.3f} | {m['build']:.3f} | {m['boot']:.3f} | {m['check']:.3f} | "
              f"{m['total'] - base:+.3f} |")


if __name__ == "__main__":
    main()
