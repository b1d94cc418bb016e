"""The KTAP reader (kharness/health/ktap.py): strict on documents (what `--ktap` writes must be
exactly KTAP v1, as kunit_tool's parser reads it), lenient on kernel logs (KUnit output among
other kernel messages, cut short by a crash).

The documents here are the examples of Documentation/dev-tools/ktap.rst and the line forms of
tools/testing/kunit/kunit_parser.py; the kernel logs are tests/data/console/*kunit*.log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness.health import ktap

CONSOLE = Path(__file__).resolve().parents[1] / "data" / "console"

SPEC_EXAMPLE = """\
KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
"""


def test_the_specs_example_reads_as_the_spec_says():
    main = ktap.parse(SPEC_EXAMPLE)
    assert main.status == "fail"
    assert main.statuses() == {"main_test": ("fail", {
        "example_test_1": ("pass", {"test_1": "pass"}),
        "example_test_2": ("pass", {"test_1": "skipped", "test_2": "pass"}),
        "example_test_3": ("fail", {"test_1": "pass", "test_2": "fail", "test_3": "skipped"})})}
    t3 = main.subtests[0].subtests[2]
    assert t3.subtests[1].log == ["# test_2: FAIL"]          # a diagnostic belongs to the next result
    assert t3.subtests[2].directive == "SKIP" and t3.subtests[2].reason == "test_3 skipped"
    assert main.subtests[0].subtests[0].subtests[0].log == ["# test_1: initializing test_1"]


def test_subtest_headers_hyphens_and_trailing_diagnostics():
    main = ktap.parse("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: suite\n  1..1\n"
                      "  ok 1 - case one\n# suite: pass:1\nok 1 suite\n# Totals: pass:1\n")
    assert main.statuses() == {"suite": ("pass", {"case one": "pass"})}
    assert main.subtests[0].log == ["# suite: pass:1"] and main.log == ["# Totals: pass:1"]
    assert main.subtests[0].plan == 1 and main.subtests[0].version == "KTAP version 1"


def test_only_skips_roll_up_to_skipped_and_nothing_to_skipped():
    assert ktap.parse("KTAP version 1\n1..2\nok 1 a # SKIP x\nok 2 b # SKIP\n").status == "skipped"
    assert ktap.parse("KTAP version 1\n1..0\n").status == "skipped"


@pytest.mark.parametrize("text, why", [
    ("TAP version 14\n1..1\nok 1 a\n", "not KTAP version 1"),
    ("KTAP version 2\n1..1\nok 1 a\n", "unknown (K)TAP version"),
    ("1..1\nok 1 a\n", "starts with 'KTAP version 1'"),
    ("KTAP version 1\nok 1 a\n", "plan line"),
    ("KTAP version 1\n1..2\nok 1 a\n", "planned 2 tests, found 1"),
    ("KTAP version 1\n1..2\nok 1 a\nok 3 b\n", "test number 3, expected 2"),
    ("KTAP version 1\n1..1\nok 1 a\nok 2 b\n", "after the last planned test"),
    ("KTAP version 1\n1..1\nstray text\nok 1 a\n", "a diagnostic starts with '#'"),
    ("KTAP version 1\n1..1\n\nok 1 a\n", "a diagnostic starts with '#'"),
    ("KTAP version 1\n1..1\n  # misplaced\nok 1 a\n", "diagnostic indented by 2"),
    ("KTAP version 1\n1..1\nok 1\n", "without a name"),
    ("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  ok 1 x\n", "expected the result line"),
    ("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: s\n  1..1\n  ok 1 x\nok 1 t\n",
     "expected the result line of s"),
    ("KTAP version 1\n1..1\n  KTAP version 1\n  1..1\n  not ok 1 x\nok 1 t\n", "t is ok but its subtest x is not"),
    ("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: t\n  1..1\n  ok 1 t\nok 1 t\n",
     "a subtest named like its parent"),
    ("KTAP version 1\n1..1\n\tKTAP version 1\n\t1..1\n\tok 1 x\nok 1 t\n", "indented with a tab"),
    ("KTAP version 1\n1..1\n  ok 1 a\n", "out of place"),
    ("KTAP version 1\n1..1\n# Kernel panic - not syncing: VFS: Unable to mount root\nok 1 a\n",
     "kunit_tool stops reading"),
])
def test_strict_mode_names_what_is_wrong(text, why):
    with pytest.raises(ktap.KtapError, match=r"line \d+|end of document") as e:
        ktap.parse(text)
    assert why in str(e.value)


def test_lenient_mode_reads_what_strict_mode_refuses():
    main = ktap.parse("KTAP version 1\n1..2\nok 1 a\n", strict=False)
    assert [t.status for t in main.subtests] == ["pass", "crashed"]


# --- KUnit in kernel logs ---------------------------------------------------------------------

def _cases(suite: ktap.KtapTest) -> list[tuple[str, str]]:
    return [(c.name, c.status) for c in suite.subtests]


def test_a_modules_suite_with_a_skip_and_parameters():
    (suite,) = ktap.kunit_suites((CONSOLE / "x86_64-6.1-kunit_pass.log").read_text())
    assert (suite.name, suite.status) == ("kunit_example", "pass")
    assert _cases(suite) == [("kunit_example_adds", "pass"), ("kunit_example_needs_hw", "skipped"),
                             ("kunit_example_params", "pass")]
    assert suite.subtests[1].reason == "no such device on this board"
    assert _cases(suite.subtests[2]) == [("one", "pass"), ("two", "pass"), ("three", "pass")]
    assert suite.log == ["# kunit_example: pass:2 fail:0 skip:1 total:3", "# Totals: pass:4 fail:0 skip:1 total:5"]


def test_a_failed_expectation_keeps_its_message_and_its_indentation():
    first, second = ktap.kunit_suites((CONSOLE / "x86_64-6.1-kunit_fail.log").read_text())
    assert (first.status, second.status) == ("fail", "pass")
    assert _cases(first)[1] == ("kunit_example_wraps", "fail")
    assert first.subtests[1].log == [
        "# kunit_example_wraps: EXPECTATION FAILED at /root/kunit_example/kunit_example.c:27",
        "Expected wrapped == 0, but", "    wrapped == 256 (0x100)"]
    assert _cases(second) == [("kunit_example_more_adds", "pass")]


def test_a_case_that_oopsed_is_crashed_with_the_oops_as_its_log():
    (suite,) = ktap.kunit_suites((CONSOLE / "x86_64-6.1-kunit_crash.log").read_text())
    assert suite.status == "crashed"
    assert [c.status for c in suite.subtests] == ["pass", "crashed", "crashed"]
    assert suite.subtests[1].log[0] == "BUG: kernel NULL pointer dereference, address: 0000000000000000"


def test_a_top_level_document_with_tabs_and_tap14_as_older_kernels_print():
    log = ("[    0.060000] printk: console [mc-1] enabled\n[    0.060000] TAP version 14\n[    0.060000] 1..2\n"
           "[    0.060000] \t# Subtest: first\n[    0.060000] \t1..2\n[    0.060000] \tok 1 - a\n"
           "[    0.060000] \tnot ok 2 - b\n[    0.060000] not ok 1 - first\n"
           "[    0.060000] \t# Subtest: second\n[    0.060000] \t1..1\n[    0.060000] \tok 1 - c # SKIP no\n"
           "[    0.060000] ok 2 - second\n[    0.060000] List of all partitions:\n"
           "[    0.060000] \t# Subtest: after_the_end\n")
    suites = ktap.kunit_suites(log)
    assert [(s.name, s.status, _cases(s)) for s in suites] == [
        ("first", "fail", [("a", "pass"), ("b", "fail")]), ("second", "pass", [("c", "skipped")])]


def test_a_case_missing_from_the_middle_is_crashed_in_its_place():
    log = ("    KTAP version 1\n    # Subtest: s\n    1..3\n    ok 1 a\n    something went wrong\n"
           "    ok 3 c\nok 7 s\n")
    (suite,) = ktap.kunit_suites(log)
    assert [(c.number, c.name, c.status) for c in suite.subtests] == [(1, "a", "pass"), (2, "", "crashed"),
                                                                        (3, "c", "pass")]
    assert suite.subtests[1].log == ["something went wrong"] and suite.status == "crashed"


def test_a_log_without_kunit_has_no_suites():
    assert ktap.kunit_suites((CONSOLE / "x86_64-6.1-init_oops.log").read_text()) == []
    assert ktap.kunit_suites("") == []
