#!/usr/bin/env python3
"""What sending files to a restored guest costs per target: the command channel's speed.

    .venv/bin/python bench/bench_delivery.py [--targets x86_64,arm64,ppc64le,rpi3] [--kib 256] [--runs 3]

Two modules are run restored from the target's snapshot (a first, uncounted run builds each and
makes the snapshot), interleaved: `small` (a module that prints a line) and `blob` (the same with
--kib KiB of random, incompressible bytes in .rodata, read by its init so the compiler keeps them).
The difference of their boot phases (restore + setup command, which carries the run's files) is
the time to send the extra bytes; bytes/s = the base64 of the gzip of the extra bytes over that.
The figures set `channel_rate` in images/<target>.toml (which files ride along with every run:
kharness.runner.image.rides_along). Wall-clock figures on whatever machine runs this.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SOURCE = """#include <linux/module.h>
#include <linux/init.h>
static const unsigned char blob[] = {%s};
static int __init b_init(void)
{
	unsigned int s = 0;
	size_t i;

	for (i = 0; i < sizeof(blob); i++)
		s += blob[i];
	pr_info("%s %%u\\n", s);
	return 0;
}
static void __exit b_exit(void) {}
module_init(b_init);
module_exit(b_exit);
MODULE_LICENSE("GPL");
"""


def module(root: Path, name: str, data: bytes) -> Path:
    d = root / name
    d.mkdir()
    (d / f"{name}.c").write_text(SOURCE % (",".join(map(str, data)) or "0", name))
    return d


def boot_phase(module_dir: Path, target: str, out: Path) -> float:
    argv = [sys.executable, "-m", "kharness", "run", str(module_dir), "--target", target, "--json", str(out), "-q"]
    p = subprocess.run(argv, cwd=ROOT, env=dict(os.environ, KHARNESS_PROGRESS="0"), capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{module_dir.name} on {target} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    r = json.loads(out.read_text())
    if r.get("boot_mode") != "snapshot":
        return float("nan")
    return next(ph["duration"] for ph in r["phases"] if ph["name"] == "boot")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="x86_64,arm64,ppc64le,rpi3")
    ap.add_argument("--kib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    extra = os.urandom(args.kib * 1024)
    sent = len(gzip.compress(extra, 6)) * 4 // 3     # what crosses the channel: base64 of gzip
    print(f"| target | boot, small | boot, +{args.kib} KiB | difference | bytes/s |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        small, blob = module(tmp, "small", b""), module(tmp, "blob", extra)
        for target in args.targets.split(","):
            out = tmp / "r.json"
            for m in (small, blob):
                boot_phase(m, target, out)          # build, snapshot
            rows: dict[str, list[float]] = {"small": [], "blob": []}
            for _ in range(args.runs):
                rows["small"].append(boot_phase(small, target, out))
                rows["blob"].append(boot_phase(blob, target, out))
            a, b = statistics.median(rows["small"]), statistics.median(rows["blob"])
            rate = sent / (b - a) if b > a else float("inf")
            print(f"| {target} | {a:.3f} s | {b:.3f} s | {b - a:+.3f} s | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
