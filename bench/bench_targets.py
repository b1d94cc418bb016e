#!/usr/bin/env python3
"""End-to-end `kharness run examples/hello` per target: cold boot, snapshot restore with an edited
module, snapshot restore with the module unchanged; beside a bare QEMU boot of the same kernel.

    .venv/bin/python bench/bench_targets.py [--targets x86_64,arm64,rpi3,rpi2,ppc64le,ppc64] [--runs 3]

* bare: QEMU with the profile's machine, the same kernel (and device tree), and a busybox initramfs
  whose /init prints a marker on the console: the time until the marker is the floor for reaching
  user space on that board under TCG;
* cold boot: `kharness run --cold` (warm cache, module unchanged: the guest is booted);
* snapshot, edited: the module's source changed before every run (rebuilt), guest restored;
* snapshot, unchanged: the rerun of an unchanged module (not rebuilt), guest restored;
* boot phase: QEMU start (or restore) to the command channel answering, for the unchanged rerun.
Uses the normal cache (warmed by a first run). Timings are figures, never assertions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARK = b"KH-BARE-UP"


def kharness(target: str, kernel: str | None, out: Path, module: Path = ROOT / "examples/hello",
             *extra: str) -> tuple[float, dict]:
    argv = [sys.executable, "-m", "kharness", "run", str(module), "--target", target,
            "--json", str(out), "-q", *extra]
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
    from kharness.plan import guest_image, resolve_any
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
    edited = Path(tempfile.mkdtemp()) / "hello"
    shutil.copytree(ROOT / "examples/hello", edited)
    rows = []
    for target in args.targets.split(","):
        kharness(target, args.kernel, out)  # warm the cache (and save the snapshot)
        cold, edit, same, boots, rel, mode = [], [], [], [], "", ""
        for i in range(args.runs):
            cold.append(kharness(target, args.kernel, out, ROOT / "examples/hello", "--cold")[0])
            with open(edited / "hello.c", "a") as f:   # a real edit: the module is rebuilt
                f.write(f"/* edit {time.time_ns()} */\n")
            edit.append(kharness(target, args.kernel, out, edited)[0])
            wall, r = kharness(target, args.kernel, out)
            same.append(wall)
            boots.append(next(p for p in r["phases"] if p["name"] == "boot")["duration"])
            rel, mode = r["kernel"]["release"], r["boot_mode"]
        b = bare(target, args.kernel, args.runs)
        rows.append((target, rel, med(b), med(cold), med(edit), med(same), med(boots), mode))
        print(f"{target}: bare {med(b)}s, cold {med(cold)}s, edited {med(edit)}s, unchanged {med(same)}s "
              f"({mode})", file=sys.stderr)
    print("\n| target | kernel | bare QEMU boot to user space | `--cold` end to end | snapshot, module edited "
          "| snapshot, module unchanged | boot phase (unchanged) |")
    print("|---|---|---|---|---|---|---|")
    for t, rel, b, c, e, u, bo, mode in rows:
        note = "" if mode == "snapshot" else f" ({mode})"
        print(f"| {t} | {rel} | {b} s | {c} s | {e} s{note} | {u} s{note} | {bo} s |")
    print(f"\nmedians of {args.runs} runs, TCG, warm cache")
    shutil.rmtree(edited.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
