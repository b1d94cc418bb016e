"""Recorded kernel logs through the kernel-log scanner, kunit_tool style: every NAME.log in
tests/data/console has a NAME.expected.json beside it, and the scanner must find exactly the
reports listed there - kind, headline, line, blamed module, and where each report starts and ends.

Where each log comes from is in tests/data/console/README.md: most are recorded from real boots
(x86_64, Debian 6.1, `kharness run ... --keep`, the run directory's console.log); those of kernels
this machine does not keep (ppc64le, the lockdep debug kernel) follow those kernels' printk formats.
"""

import json
from pathlib import Path

import pytest

from kharness.health import scan_kernel_log, strip_prefix

DATA = Path(__file__).resolve().parent.parent / "data" / "console"
LOGS = sorted(DATA.glob("*.log"))


def _expected(log: Path) -> Path:
    return log.with_name(log.name.removesuffix(".log") + ".expected.json")


def test_every_recorded_log_has_its_expectation():
    assert len(LOGS) >= 11
    assert [p.name for p in LOGS if not _expected(p).is_file()] == []
    # ... and no expectation is left without its log (a renamed log would skip its check).
    assert sorted(p.name.removesuffix(".expected.json") for p in DATA.glob("*.expected.json")) == \
        [p.name.removesuffix(".log") for p in LOGS]


@pytest.mark.parametrize("log", LOGS, ids=[p.name for p in LOGS])
def test_recorded_log_gives_the_expected_findings(log):
    expected = json.loads(_expected(log).read_text())["findings"]
    got = []
    for f in scan_kernel_log(log.read_text()):
        lines = f.report.split("\n")
        got.append({"kind": f.kind, "summary": f.summary, "line": f.line, "module": f.module,
                    "report_first": strip_prefix(lines[0]), "report_last": strip_prefix(lines[-1]),
                    "report_lines": len(lines)})
    assert got == expected


def test_recorded_hang_has_no_crash_finding_but_shows_the_stuck_frame():
    text = (DATA / "x86_64-6.1-init_hang.log").read_text()
    # A sleeping init is not an oops: the harness reports it as a hang from its timeout.
    assert [f.kind for f in scan_kernel_log(text)] == []
    assert "init_hang_init+" in text.split("Show Blocked State", 1)[1]


def test_clean_taint_lines_are_not_findings():
    text = (DATA / "x86_64-6.1-init_hang.log").read_text()
    assert "module verification failed" in text
    assert scan_kernel_log(text.split("sysrq:")[0]) == []


def test_list_del_report_starts_at_the_corruption_line_before_cut_here():
    """Debian's kernels BUG() on list corruption: lib/list_debug.c prints what is wrong first,
    then the cut-here block; the report (and its headline) is the corruption line onwards."""
    text = (DATA / "x86_64-6.1-list_corrupt.log").read_text()
    [f] = scan_kernel_log(text)
    lines = [strip_prefix(x) for x in f.report.split("\n")]
    assert lines[0].startswith("list_del corruption, ") and lines[1] == "------------[ cut here ]------------"
    assert "kernel BUG at lib/list_debug.c:53!" in lines and f.module == "list_corrupt"


def test_oom_report_runs_from_the_invocation_to_the_kill():
    text = (DATA / "x86_64-6.1-oom_user_hog.log").read_text()
    oom, alloc = scan_kernel_log(text)
    assert "Tasks state (memory values in pages):" in oom.report
    assert strip_prefix(oom.report.split("\n")[-1]).startswith("Out of memory: Killed process 113 (sort)")
    # sort's own page fault failed after it was killed: no module in the trace, nobody's to blame.
    assert (alloc.kind, alloc.module) == ("alloc_failure", None)
