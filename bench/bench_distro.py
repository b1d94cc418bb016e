#!/usr/bin/env python3
"""What a Debian distro guest costs (issue #18: a restored distro run within 2x a restored busybox run).

    .venv/bin/python bench/bench_distro.py [--runs 5] [--target x86_64] [--kernel 6.1] [--json]

1. Cold boot to a ready SSH session: `kharness run examples/hello --guest debian --cold` (the boot
   phase is QEMU start -> systemd -> sshd -> paramiko connected -> kh-agent and files over SFTP ->
   the first health look).
2. Restored reruns of examples/hello, busybox vs debian, interleaved so that a busy host weighs
   on both alike (a first, uncounted run of each builds what is missing and saves the snapshots).

Prints medians of the whole command's wall time and of the boot phase. Wall-clock figures on
whatever machine runs this: a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "examples" / "hello"


def one(args: list[str]) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "kharness", "run", str(HELLO), *args, "--json", str(out), "-q"],
                           capture_output=True, text=True, cwd=ROOT)
        wall = time.monotonic() - t
        if p.returncode != 0:
            sys.exit(f"kharness run {' '.join(args)} failed ({p.returncode}): {p.stderr[-1500:]}")
        return wall, json.loads(out.read_text())


def boot_phase(r: dict) -> float:
    return next(p["duration"] for p in r["phases"] if p["name"] == "boot")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--target", default="x86_64")
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    base = ["--target", a.target, "--kernel", a.kernel]
    cases = {"busybox": base, "debian": base + ["--guest", "debian"]}
    for args in cases.values():   # warm-up: builds, root filesystem, snapshots
        one(args)
    cold = [one(cases["debian"] + ["--cold"]) for _ in range(max(1, a.runs // 2))]
    walls: dict[str, list[float]] = {k: [] for k in cases}
    boots: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(a.runs):
        for name, args in cases.items():
            wall, r = one(args)
            assert r["boot_mode"] == "snapshot", (name, r["boot_mode_note"])
            walls[name].append(wall)
            boots[name].append(boot_phase(r))
    med = statistics.median
    report = {
        "target": a.target, "kernel": a.kernel, "runs": a.runs,
        "debian_cold": {"wall": med([w for w, _ in cold]), "boot_phase": med([boot_phase(r) for _, r in cold])},
        "restored": {k: {"wall": med(walls[k]), "boot_phase": med(boots[k])} for k in cases},
    }
    report["ratio_restored_debian_to_busybox"] = report["restored"]["debian"]["wall"] / report["restored"]["busybox"]["wall"]
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{a.target} {a.kernel}, medians of {a.runs} (cold: {len(cold)})")
    print(f"  debian cold boot to ready SSH (boot phase): {report['debian_cold']['boot_phase']:.2f} s; "
          f"whole run {report['debian_cold']['wall']:.2f} s")
    for k in cases:
        rr = report["restored"][k]
        print(f"  restored {k:8s}: run {rr['wall']:.2f} s, boot phase {rr['boot_phase']:.2f} s")
    print(f"  restored debian / busybox: {report['ratio_restored_debian_to_busybox']:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
