"""KUnit suites in a module, through the real runner with the fake guest: insmod prints the
KTAP a 6.1 kernel with KUnit prints (tests/data/console/x86_64-6.1-kunit_*.log), and the result
holds the suites per case; a failed or crashed case fails the load. Debian's kernels have no
CONFIG_KUNIT, so no real run can show this yet (see tests/fixtures/modules/kunit_example)."""

from __future__ import annotations

from kharness.health import ktap as reader
from kharness.result import kcidb, ktap
from kharness.testing.fake_guest import Rule
from kharness.testing.fake_guest import FakeGuest
from tests.unit.test_runner_fake_guest import (  # noqa: F401  (no_build: the fixture)
    BOOT_LOG, OUT_OF_TREE, RELEASE, _guest, _run, _statuses, no_build, recorded)

DIED = 128
INSMOD = r"^insmod /kh/kunit_example\.ko$"


def _insmod(log: str, taint: int = OUT_OF_TREE) -> Rule:
    return Rule(INSMOD, taint=taint, kernel_log=log, loads="kunit_example")


def test_passing_suites_pass_the_run_and_are_in_the_result(no_build):
    r = _run("kunit_example", _guest(_insmod(recorded("kunit_pass"))))
    assert r.status == "pass", r.summary
    (suite,) = r.kunit
    assert (suite["name"], suite["phase"], suite["status"]) == ("kunit_example", "load", "pass")
    assert [(c["name"], c["status"]) for c in suite["cases"]] == [
        ("kunit_example_adds", "pass"), ("kunit_example_needs_hw", "skipped"), ("kunit_example_params", "pass")]
    assert [p["status"] for p in suite["cases"][2]["params"]] == ["pass"] * 3
    assert r.to_dict()["kunit"] == r.kunit


def test_a_failed_case_fails_the_load(no_build):
    guest = _guest(_insmod(recorded("kunit_fail")))
    r = _run("kunit_example", guest)
    assert (r.status, r.summary) == ("fail", "load: KUnit: 1 of 4 case(s) failed: kunit_example.kunit_example_wraps")
    assert _statuses(r) == ["pass", "pass", "pass", "fail", "skipped", "skipped"]
    assert [s["status"] for s in r.kunit] == ["fail", "pass"]
    assert "EXPECTATION FAILED" in r.kunit[0]["cases"][1]["log"]
    # ... and so do its KTAP and KCIDB.
    main = reader.parse(ktap.run_document(r.to_dict()))
    load = main.subtests[3]
    assert load.status == "fail" and load.statuses()["kunit_example"][1]["kunit_example_wraps"] == "fail"
    assert [(t.name, t.status) for t in load.subtests] == [("kunit_example", "pass"), ("kunit_example", "fail"),
                                                          ("kunit_example_more", "pass")]   # the module, its suites
    tests = {t["path"]: t["status"] for t in kcidb.document(
        {"key": "k"}, [(r.to_dict(), "x86_64")])["tests"]}
    assert tests["kharness.kunit.kunit_example.kunit_example_wraps"] == "FAIL"
    assert tests["kharness.load"] == "FAIL"


def test_a_case_that_oopses_fails_the_load_on_the_oops_and_is_crashed(no_build):
    r = _run("kunit_example", _guest(_insmod(recorded("kunit_crash"), taint=OUT_OF_TREE | DIED)))
    assert r.status == "fail"
    assert r.summary.startswith("load: kernel reported null_deref: BUG: kernel NULL pointer dereference")
    (suite,) = r.kunit
    assert suite["status"] == "crashed" and [c["status"] for c in suite["cases"]] == ["pass", "crashed", "crashed"]


def test_kunit_output_at_boot_is_the_kernels_own(no_build):
    """Built-in suites print at boot: not the module's, neither recorded nor held against it."""
    guest = FakeGuest([_insmod("")], kernel_log=BOOT_LOG + recorded("kunit_fail"), release=RELEASE)
    r = _run("kunit_example", guest)
    assert r.status == "pass" and r.kunit is None and "kunit_example_wraps" in r.dmesg["boot"]


def test_suites_printed_by_the_unload_belong_to_it(no_build):
    """A suite the kernel runs later (at rmmod, say) is judged in that phase."""
    rule = Rule(r"^rmmod kunit_example$", unloads="kunit_example", kernel_log=recorded("kunit_fail"))
    r = _run("kunit_example", _guest(rule))
    assert r.status == "fail" and r.summary.startswith("unload: KUnit: 1 of 4 case(s) failed")
    assert {s["phase"] for s in r.kunit} == {"unload"}
    rule = Rule(r"^rmmod kunit_example$", unloads="kunit_example", kernel_log=recorded("kunit_pass"))
    r = _run("kunit_example", _guest(rule))
    assert r.status == "pass" and r.kunit[0]["phase"] == "unload"
