#!/usr/bin/env python3
"""Benchmark: `kharness matrix examples/hello` over 4 kernel series x 5 targets with -j 2 (warm
cache: run it twice, the second run is the figure). Prints the wall time and each cell's time.

    .venv/bin/python bench/bench_matrix.py [--targets x86_64,arm64,rpi3,ppc64le,ppc64] [-j 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="x86_64,arm64,rpi3,ppc64le,ppc64")
    ap.add_argument("--kernels", default="5.10,6.1,6.12,7.2")
    ap.add_argument("-j", default="2")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "kharness", "matrix", str(ROOT / "examples" / "hello"),
                            "--targets", a.targets, "--kernels", a.kernels, "-j", a.j, "-o", d],
                           capture_output=True, text=True)
        wall = time.monotonic() - t
        s = json.loads((Path(d) / "summary.json").read_text())
    print(f"matrix {a.targets} x {a.kernels}, -j {a.j}: wall {wall:.1f}s, exit {p.returncode}, "
          f"{s['counts']}")
    for c in sorted(s["cells"], key=lambda c: (c["target"], c["kernel"])):
        print(f"  {c['id']:16} {c['status']:5} {c['duration']:6.1f}s  {c['release']}")
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
