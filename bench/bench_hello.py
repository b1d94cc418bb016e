#!/usr/bin/env python3
"""Benchmark `kharness run examples/hello` phase by phase, against a bare QEMU boot and virtme-ng.

    .venv/bin/python bench/bench_hello.py [--kernel 6.1] [--runs 3] [--no-cold] [--no-vng]

* cold: an empty cache (every download, unpack, build and image from scratch);
* warm, cold boot: the same cache again with --cold (nothing downloaded, the unchanged module
  not rebuilt, the guest booted);
* warm, snapshot: the same, restoring the ready snapshot instead of booting (the default);
* bare: qemu-system-x86_64 -kernel <the same vmlinux> -initrd <busybox initramfs whose init
  powers off at once>: the floor for any harness that boots this kernel under TCG;
* virtme-ng: `vng --run <the same vmlinuz> --disable-kvm --exec 'uname -r'` (installed into
  bench/.venv-vng from PyPI on first use).

Timings are wall-clock on whatever machine runs this: a benchmark, never a test assertion.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def kharness_run(cache: Path, kernel: str, out: Path, *extra: str) -> tuple[float, dict]:
    env = dict(os.environ, KHARNESS_CACHE=str(cache), KHARNESS_PROGRESS="0")
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "kharness", "run", str(ROOT / "examples/hello"), "--kernel", kernel,
                        "--json", str(out), "-q", *extra], env=env, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"kharness run failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return wall, json.loads(out.read_text())


def bare_boot(kernel: str, runs: int):
    """The bare floor: the same x86_64 kernel and machine, an initramfs that powers off at once."""
    from bench_targets import bare
    from kharness.kernels.resolve import resolve_kernel
    from kharness.kernels.store import ensure_kernel
    from kharness.targets import get_target

    prof = get_target("x86_64")
    kb = ensure_kernel(resolve_kernel(prof, kernel), boot=prof.kernel_boot, want_modules=prof.guest_modules)
    return bare("x86_64", kernel, runs), kb


def virtme_ng(cache: Path, kernel_bundle, runs: int) -> list[float] | str:
    """vng boots the same Debian kernel; it needs the package's full module tree (for 9p) beside
    the image, so the cached linux-image .deb is unpacked once into bench/.vng-kernels."""
    from kharness.debian.deb import extract_deb
    from kharness.kernels.resolve import resolve_kernel
    from kharness.debian.pool import fetch_pkg
    from kharness.targets import get_target

    venv = ROOT / "bench" / ".venv-vng"
    vng = venv / "bin" / "vng"
    if not vng.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        p = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "virtme-ng"], capture_output=True, text=True)
        if p.returncode != 0:
            return f"could not install virtme-ng: {p.stderr.strip().splitlines()[-1:]}"
    release = kernel_bundle.release
    tree = ROOT / "bench" / ".vng-kernels" / release
    if not (tree / "boot").is_dir():
        spec = resolve_kernel(get_target("x86_64"), release)
        for pkg in spec.image_pkgs:
            extract_deb(fetch_pkg(pkg), tree)
        subprocess.run(["depmod", "-b", str(tree), release], check=True)
    vmlinuz = next(tree.glob("boot/vmlinuz-*"), None) or next(tree.glob("usr/lib/modules/*/vmlinuz"))
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    times = []
    for _ in range(runs):
        t = time.monotonic()
        # --verbose: without a terminal vng prints the command's output only in verbose mode.
        p = subprocess.run([str(vng), "--run", str(vmlinuz), "--disable-kvm", "--verbose", "--exec", "uname -r"],
                           capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, env=env)
        # vng exits 255 after a successful --exec on some versions: judge by the output.
        if not any(line.strip() == release for line in (p.stdout + p.stderr).splitlines()):
            return f"vng failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}"
        times.append(time.monotonic() - t)
    return times


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache run (it downloads ~85 MB)")
    ap.add_argument("--no-vng", action="store_true")
    ap.add_argument("--cache", type=Path, help="warm cache to use (default: a fresh one for the cold run)")
    args = ap.parse_args()

    cache = args.cache or Path(tempfile.mkdtemp(prefix="kharness-bench-"))
    out = Path(tempfile.mkdtemp()) / "r.json"
    rows = []
    if not args.no_cold and not args.cache:
        wall, r = kharness_run(cache, args.kernel, out)
        rows.append(("kharness run, cold cache", f"{wall:.2f}s", r))
    else:
        kharness_run(cache, args.kernel, out)  # make sure the cache is warm
    cold_boot = []
    for _ in range(args.runs):
        wall, last = kharness_run(cache, args.kernel, out, "--cold")
        cold_boot.append(wall)
    rows.append(("kharness run --cold, warm cache (module unchanged, guest booted)", fmt(cold_boot), last))
    warm = []
    last = None
    for _ in range(args.runs):
        wall, last = kharness_run(cache, args.kernel, out)
        warm.append(wall)
    rows.append(("kharness run, warm cache, snapshot restored (module unchanged)", fmt(warm), last))
    os.environ["KHARNESS_CACHE"] = str(cache)
    bare, kb = bare_boot(args.kernel, args.runs)
    rows.append(("bare qemu boot to user space (same vmlinux, busybox)", fmt(bare), None))
    vng = None if args.no_vng else virtme_ng(cache, kb, max(1, min(args.runs, 2)))
    if vng is not None:
        rows.append(("virtme-ng --disable-kvm --exec 'uname -r'", fmt(vng) if isinstance(vng, list) else vng, None))

    print(f"\n## examples/hello on x86_64, kernel {last['kernel']['release']}, accelerator {last['accelerator']}\n")
    print("| what | time |\n|---|---|")
    for name, t, _ in rows:
        print(f"| {name} | {t} |")
    print("\nPhases (seconds):\n")
    print("| run | " + " | ".join(p["name"] for p in last["phases"]) + " |")
    print("|---|" + "---|" * len(last["phases"]))
    for name, _, r in rows:
        if r:
            print(f"| {name} | " + " | ".join(f"{p['duration']:.2f}" for p in r["phases"]) + " |")
    print(f"\nsnapshot end-to-end / bare boot: {statistics.median(warm) / statistics.median(bare):.2f}x; "
          f"cold-boot end-to-end / bare boot: {statistics.median(cold_boot) / statistics.median(bare):.2f}x")
    if isinstance(vng, list):
        print(f"virtme-ng / kharness (snapshot): {statistics.median(vng) / statistics.median(warm):.1f}x")
    if not args.cache:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
