"""Integration tests run the real `kharness` CLI: real Debian kernels, real QEMU, real modules.

The kernel and image cache is the user's normal cache (``~/.cache/kharness`` unless
``KHARNESS_CACHE`` is set), shared safely between pytest-xdist workers by kharness's own locks.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "modules"
EXAMPLES = ROOT / "examples"
KHARNESS = [sys.executable, "-m", "kharness"]
# Generous: TCG on a loaded 2-core CI machine. A healthy run takes seconds, but the first run of a
# self-built kernel (ppc64, the debug kernels) builds it, or waits for another worker building it:
# 15-25 minutes on a slow host. kharness bounds its own boots and steps; this only bounds a bug.
RUN_LIMIT = 2700
RESULT_SCHEMA = json.loads((ROOT / "kharness" / "result" / "result.schema.json").read_text())


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
        if result is not None:
            # Every result an integration test sees is also a check of the published schema.
            jsonschema.validate(result, RESULT_SCHEMA)
        return Outcome(p.returncode, p.stdout, p.stderr, result)

    return call


# --- what the archive has -----------------------------------------------------------------------
# Debian moves (sid leaves 7.2 behind, bullseye leaves the mirrors): a test that names a series asks
# here first and is skipped, saying why, when the archive no longer offers it. Read from the same
# signed indices kharness resolves kernels from (and cached as kharness caches them).

@functools.lru_cache(maxsize=None)
def archive_series(target: str) -> tuple[str, ...]:
    """Every series the archive offers ``target`` now, lowest first (reads every suite's index)."""
    from kharness.kernels import resolve
    from kharness.targets import get_target

    prof = get_target(target)
    if prof.kernel_source != "debian":   # built from linux-source-<series>
        return tuple(s for s in prof.series if resolve.source_suites(s))
    return tuple(resolve.archive_series(prof))


@functools.lru_cache(maxsize=None)
def has_series(target: str, series: str) -> bool:
    """Whether the archive offers ``series`` for ``target`` (reads only where it was last seen,
    unless it moved)."""
    from kharness.kernels import resolve
    from kharness.targets import get_target

    prof = get_target(target)
    if prof.kernel_source != "debian":
        return series in prof.series and bool(resolve.source_suites(series))
    return bool(resolve.available(prof, series))


def require_series(target: str, *series: str) -> None:
    """Skip the calling test when the archive lacks one of ``series`` for ``target``."""
    for s in series:
        if not has_series(target, s):
            pytest.skip(f"the archive no longer offers {s} for {target} (kharness kernels)")


def newest_series(target: str) -> str:
    """The highest series the archive offers ``target`` among those kharness is tested with there."""
    from kharness.targets import get_target

    tested = [s for s in archive_series(target) if s in get_target(target).series]
    if not tested:
        pytest.skip(f"the archive offers {target} none of the series kharness is tested with")
    return tested[-1]


@pytest.fixture
def archive():
    """``archive.series(target)``, ``archive.has(target, series)``, ``archive.require(target, *series)``
    and ``archive.newest(target)``: choose series by what the archive has."""
    class Archive:
        series = staticmethod(archive_series)
        has = staticmethod(has_series)
        require = staticmethod(require_series)
        newest = staticmethod(newest_series)

    return Archive()


# pytest-timeout bounds every test (pyproject: 1200 s). A test that may build a kernel the first
# time (the ppc64 kernel from Debian's source, a debug kernel: 15-25 minutes on a slow host, or
# waiting for another worker building it) gets the kernel build's limit plus one run instead.
KERNEL_BUILD_LIMIT = 3600 + RUN_LIMIT
SELF_BUILT_TARGETS = {"ppc64"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "debug_kernel" in getattr(item, "fixturenames", ()) or params.get("target") in SELF_BUILT_TARGETS:
            item.add_marker(pytest.mark.timeout(KERNEL_BUILD_LIMIT))
