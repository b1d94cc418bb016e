"""Recorded console logs from real boots (x86_64, Debian 6.1) through the kernel-log scanner.

Recorded with `kharness run tests/fixtures/modules/<fixture> --keep` (console.log of the run
directory). kunit_tool style: the parser is tested on what the kernel really printed.
"""

from pathlib import Path

import pytest

from kharness.health import scan_kernel_log

DATA = Path(__file__).resolve().parent.parent / "data" / "console"

CASES = [
    ("x86_64-6.1-init_oops.log", "null_deref", "BUG: kernel NULL pointer dereference", "init_oops"),
    ("x86_64-6.1-init_panic.log", "panic", "Kernel panic - not syncing: kharness fixture: deliberate panic", None),
    ("x86_64-6.1-init_warn.log", "warning", "WARNING: CPU: 0 PID:", "init_warn"),
    ("x86_64-6.1-exit_bug.log", "bug", "kernel BUG at", "exit_bug"),
]


@pytest.mark.parametrize("log,kind,summary,module", CASES)
def test_recorded_console_classified(log, kind, summary, module):
    findings = scan_kernel_log((DATA / log).read_text())
    first = findings[0]
    assert first.kind == kind
    assert first.summary.startswith(summary)
    if module:
        assert first.module == module


def test_recorded_hang_has_no_crash_finding_but_shows_the_stuck_frame():
    text = (DATA / "x86_64-6.1-init_hang.log").read_text()
    # A sleeping init is not an oops: the harness reports it as a hang from its timeout.
    assert [f.kind for f in scan_kernel_log(text)] == []
    assert "init_hang_init+" in text.split("Show Blocked State", 1)[1]


def test_clean_taint_lines_are_not_findings():
    text = (DATA / "x86_64-6.1-init_hang.log").read_text()
    assert "module verification failed" in text
    assert scan_kernel_log(text.split("sysrq:")[0]) == []
