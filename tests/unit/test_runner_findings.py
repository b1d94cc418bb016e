"""Which kernel reports fail a run (Context.findings, verdict.scan), on recorded logs (tests/data/console)."""

from __future__ import annotations

from pathlib import Path

from kharness.runner import Run, RunOptions

DATA = Path(__file__).resolve().parent.parent / "data" / "console"


def _blocking(tmp_path, log: str, tested: set[str], phase: str = "load") -> list[tuple[str, bool]]:
    run = Run(RunOptions(module_dir=tmp_path))
    run.tested = tested
    run.findings(phase, (DATA / log).read_text(), baseline=(phase == "boot"))
    return [(f["kind"], f["blocking"]) for f in run.result.findings]


def test_the_modules_own_failed_allocation_fails_the_run(tmp_path):
    assert _blocking(tmp_path, "x86_64-6.1-alloc_fail.log", {"alloc_fail"}) == [("alloc_failure", True)]


def test_an_allocation_failure_that_is_not_the_modules_is_recorded_only(tmp_path):
    # another module's allocation (not under test), and user space's (no module in the trace)
    assert _blocking(tmp_path, "x86_64-6.1-alloc_fail.log", {"other"}) == [("alloc_failure", False)]
    assert _blocking(tmp_path, "x86_64-6.1-oom_user_hog.log", {"hello"}) == [("oom", True), ("alloc_failure", False)]


def test_reports_during_boot_never_block(tmp_path):
    assert _blocking(tmp_path, "x86_64-6.1-list_corrupt.log", {"list_corrupt"}, "boot") == [("bug", False)]
    assert _blocking(tmp_path, "x86_64-6.1-list_corrupt.log", {"list_corrupt"}) == [("bug", True)]
