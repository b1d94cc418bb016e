#!/usr/bin/env python3
"""Boot-to-ready and end-to-end `kharness run examples/hello` per target, beside a bare QEMU boot.

    .venv/bin/python bench/bench_targets.py [--targets x86_64,arm64,rpi3,rpi2,ppc64le,ppc64] [--runs 3]

* bare: QEMU with the profile's machine, the same kernel (and device tree), and a busybox initramfs
  whose /init prints a marker on the console: the time until the marker is the floor for reaching
  user space on that board under TCG;
* kharness boot: the boot phase of `kharness run` (QEMU start to the command channel answering);
* kharness end-to-end: the whole `kharness run examples/hello` with a warm cache.
Uses the normal cache (warm it with one run first). Timings are figures, never assertions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARK = b"KH-BARE-UP"


def kharness(target: str, kernel: str | None, out: Path) -> tuple[float, dict]:
    argv = [sys.executable, "-m", "kharness", "run", str(ROOT / "examples/hello"), "--target", target,
            "--json", str(out), "-q"]
    if kernel:
        argv += ["--kernel", kernel]
    t = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, KHARNESS_PROGRESS="0"))
    wall = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"{target}: kharness run failed ({p.returncode})\n{p.stdout[-2000:]}")
    return wall, json.loads(out.read_text())


def bare(target: str, kernel: str | None, runs: int) -> list[float]:
    from kharness.image.cpio import CpioWriter
    from kharness.image.initramfs import _busybox
    from kharness.runner import guest_image, resolve_any
    from kharness.targets import get_target
    from kharness.vm.qemu import BootSpec, build_argv

    prof = get_target(target)
    spec, built = resolve_any(prof, kernel)
    k, _base, dtb = guest_image(prof, spec, built)
    busybox, _ = _busybox(prof)
    w = CpioWriter()
    for d in ("bin", "dev", "proc"):
        w.dir(d)
    w.chardev("dev/console", 5, 1)
    w.file("bin/busybox", busybox, 0o755)
    w.file("init", b"#!/bin/busybox sh\n/bin/busybox echo KH-BARE-UP\n/bin/busybox poweroff -f\n", 0o755)
    tmp = Path(tempfile.mkdtemp())
    (tmp / "initrd").write_bytes(gzip.compress(w.getvalue()))
    argv = build_argv(prof, BootSpec(k.kernel, tmp / "initrd", dtb), tmp, "tcg")
    # Console on stdout, no command channel.
    i = argv.index("-chardev")
    argv = argv[:i] + ["-chardev", "stdio,id=kh_con", *prof.console_args]
    times = []
    for _ in range(runs):
        t = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        buf = b""
        while MARK not in buf and time.monotonic() - t < 300:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        times.append(time.monotonic() - t)
        p.kill()
        p.wait()
    return times


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="x86_64,arm64,rpi3,rpi2,ppc64le,ppc64")
    ap.add_argument("--kernel", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp()) / "r.json"
    rows = []
    for target in args.targets.split(","):
        kharness(target, args.kernel, out)  # warm the cache
        walls, boots, rel = [], [], ""
        for _ in range(args.runs):
            wall, r = kharness(target, args.kernel, out)
            walls.append(wall)
            boots.append(next(p for p in r["phases"] if p["name"] == "boot")["duration"])
            rel = r["kernel"]["release"]
        b = bare(target, args.kernel, args.runs)
        rows.append((target, rel, med(b), med(boots), med(walls)))
        print(f"{target}: bare {med(b)}s, kharness boot {med(boots)}s, end-to-end {med(walls)}s", file=sys.stderr)
    print("\n| target | kernel | bare QEMU boot to user space | kharness boot phase | kharness run hello, end to end |")
    print("|---|---|---|---|---|")
    for t, rel, b, bo, w in rows:
        print(f"| {t} | {rel} | {b} s | {bo} s | {w} s |")
    print(f"\nmedians of {args.runs} runs, TCG, warm cache")


if __name__ == "__main__":
    main()
