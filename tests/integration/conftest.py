"""Integration tests run the real `kharness` CLI: real Debian kernels, real QEMU, real modules.

The kernel and image cache is the user's normal cache (``~/.cache/kharness`` unless
``KHARNESS_CACHE`` is set), shared safely between pytest-xdist workers by kharness's own locks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "modules"
EXAMPLES = ROOT / "examples"
KHARNESS = [sys.executable, "-m", "kharness"]
# Generous: TCG on a loaded 2-core CI machine. A healthy run takes seconds, but the first run of a
# self-built kernel (ppc64, the debug kernels) builds it, or waits for another worker building it:
# 15-25 minutes on a slow host. kharness bounds its own boots and steps; this only bounds a bug.
RUN_LIMIT = 2700


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    result: dict | None

    def phase(self, name: str) -> dict:
        assert self.result is not None
        return next(p for p in self.result["phases"] if p["name"] == name)

    def kinds(self) -> list[str]:
        assert self.result is not None
        return [f["kind"] for f in self.result["findings"] if f.get("blocking")]


@pytest.fixture
def kharness(tmp_path):
    def call(*args: str, json_out: bool = True) -> Outcome:
        argv = [*KHARNESS, *args]
        out = tmp_path / "result.json"
        if json_out:
            argv += ["--json", str(out)]
        env = dict(os.environ, KHARNESS_PROGRESS="0")
        p = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_LIMIT, cwd=ROOT, env=env)
        result = json.loads(out.read_text()) if json_out and out.exists() else None
        return Outcome(p.returncode, p.stdout, p.stderr, result)

    return call
