"""Debug kernels catch module bugs a distribution kernel lets pass.

Each checker has a fixture module it must catch (tests/fixtures/modules/debug_*), and a clean
module doing the same kinds of work must pass with every checker on. The debug kernels are built
from Debian's linux-source-6.1 the first time (about 5 minutes each on 2 cores), then cached.

x86_64 runs in `make test`; arm64 (another kernel build) in `make test-debug`, which also runs
the x86_64 cases (KH_DEBUG_TARGETS=x86_64,arm64).
"""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import EXAMPLES, FIXTURES, KHARNESS, ROOT

pytestmark = pytest.mark.vm

TARGETS = os.environ.get("KH_DEBUG_TARGETS", "x86_64").split(",")
COMMON = ("--boot-timeout", "900", "--timeout", "180")

# fixture, the phase it fails in, the finding kind, words of the kernel's report
FAULTS = [
    ("debug_uaf", "load", "kasan", "use-after-free"),
    ("debug_leak", "unload", "kmemleak", "debug_leak_init"),
    ("debug_lock_inversion", "load", "lockdep", "circular locking"),
    ("debug_sleep_in_atomic", "load", "might_sleep", "sleeping function called from invalid context"),
    ("debug_shift", "load", "ubsan", "shift-out-of-bounds"),
]


@pytest.fixture
def debug_kernel(target):
    """Build the debug kernel first, with a limit of its own: on a busy machine the first build
    takes longer than one run may (a rerun finds it in the cache at once)."""
    env = dict(os.environ, KHARNESS_PROGRESS="0")
    p = subprocess.run([*KHARNESS, "kernel", "build", "--target", target, "--debug", "all"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("module,phase,kind,words", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_checker_catches_its_bug(kharness, debug_kernel, target, module, phase, kind, words):
    o = kharness("run", str(FIXTURES / module), "--target", target, "--kernel", "6.1-debug", *COMMON)
    assert o.rc == 1, (o.stdout, o.stderr, o.result and o.result["summary"])
    r = o.result
    assert r["kernel"]["debug"] == ["kasan", "kmemleak", "lockdep", "ubsan"]
    assert r["kernel"]["release"].endswith("-khdebug")
    assert r["summary"].startswith(f"{phase}:"), r["summary"]
    found = [f for f in r["findings"] if f["blocking"] and f["kind"] == kind]
    assert found, [(f["kind"], f["summary"]) for f in r["findings"]]
    assert any(words in f["summary"] or words in f["report"] for f in found), found[0]
    assert any(f.get("module") == module or f"[{module}]" in f["report"] for f in found), found[0]


@pytest.mark.parametrize("target", TARGETS)
def test_a_clean_module_passes_every_checker(kharness, debug_kernel, target):
    o = kharness("run", str(FIXTURES / "debug_clean"), "--target", target, "--debug", "all", *COMMON)
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert not [f for f in o.result["findings"] if f["blocking"]]
    assert "kmemleak scan: 0 leak(s) of debug_clean" in o.result["phases"][5]["log"]


@pytest.mark.parametrize("target", ["x86_64"])
def test_hello_and_its_checks_pass_on_the_debug_kernel(kharness, debug_kernel, target):
    o = kharness("run", str(EXAMPLES / "hello"), "--kernel", "6.1-debug", *COMMON)
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert o.result["checks"] and all(c["status"] == "pass" for c in o.result["checks"])


@pytest.mark.parametrize("module", ["debug_uaf", "debug_leak", "debug_lock_inversion", "debug_sleep_in_atomic",
                                    "debug_shift"])
def test_the_same_bugs_pass_unnoticed_on_debians_kernel(kharness, module):
    """What makes the debug kernel worth building: Debian's own 6.1 sees nothing wrong."""
    o = kharness("run", str(FIXTURES / module), "--kernel", "6.1")
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert "debug" not in o.result["kernel"]
