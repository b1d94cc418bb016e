"""`--ktap` (kharness/result/ktap.py): recorded results written as KTAP, compared with the golden
files in tests/data/ktap, and read back by the strict reader (kharness/health/ktap.py), whose
tree must hold the statuses the result holds.

Regenerate the golden files after a deliberate change of layout with
``KHARNESS_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_ktap_writer.py`` and read the diff.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from kharness import __version__
from kharness.health import ktap as reader
from kharness.health.kunit import kunit_results
from kharness.result import ktap

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = DATA / "ktap"


def recorded(name: str) -> dict:
    return json.loads((DATA / "results" / f"{name}.json").read_text())


def skipped_check() -> dict:
    """check_fail's run without its failing check: a passing run with a skipped check."""
    doc = recorded("check_fail")
    doc["checks"] = [c for c in doc["checks"] if c["status"] != "fail"]
    check = next(p for p in doc["phases"] if p["name"] == "check")
    check["status"], check["message"] = "pass", "2 check(s)"
    doc["status"], doc["summary"] = "pass", "built, loaded, checked and unloaded cleanly"
    return doc


def matrix_cells() -> list:
    """Two cells as the matrix hands them over: one whose run wrote its result, one that died first."""
    return [ktap.cell_node("x86_64-6.1", "pass", recorded("hello")["summary"], recorded("hello")),
            ktap.cell_node("arm64-6.1", "error", "kharness run exited 2: error: no space left on device", None)]


CASES = {
    "pass": lambda: ktap.run_document(recorded("hello")),
    "check_fail": lambda: ktap.run_document(recorded("check_fail")),
    "check_skipped": lambda: ktap.run_document(skipped_check()),
    "oops": lambda: ktap.run_document(recorded("init_oops")),
    "matrix": lambda: ktap.matrix_document("examples/hello", matrix_cells()),
}


def _versionless(text: str) -> str:
    return text.replace(f"kharness {__version__}", "kharness <version>")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_written_ktap_is_the_golden_file(name):
    text = _versionless(CASES[name]())
    golden = GOLDEN / f"{name}.ktap"
    if os.environ.get("KHARNESS_REGEN_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


def _expected(doc: dict) -> dict:
    """The tree a run's KTAP must read back as, from the result itself."""
    kinds = {"pass": "pass", "fail": "fail", "error": "fail", "skipped": "skipped"}
    names = [m["name"] for m in doc["modules"]]
    out = {}
    for p in doc["phases"]:
        st = kinds[p["status"]]
        kids = {}
        if p["name"] == "check":
            kids = {c["name"]: kinds[c["status"]] for c in doc["checks"]}
        elif p["name"] in ("load", "unload"):
            kids = {n: st for n in names}
        out[p["name"]] = (st, kids) if kids else st
    return out


@pytest.mark.parametrize("name", ["hello", "check_fail", "init_oops", "init_hang", "channel_kill"])
def test_a_recorded_run_reads_back_with_its_statuses(name):
    doc = recorded(name)
    main = reader.parse(ktap.run_document(doc))
    assert main.statuses() == _expected(doc)
    assert main.status == {"pass": "pass", "fail": "fail"}[doc["status"]]
    assert main.log[-1] == f"# verdict: {doc['status']}: {doc['summary']}"


def test_findings_are_diagnostics_of_the_phase_they_happened_in():
    main = reader.parse(ktap.run_document(recorded("init_oops")))
    load = main.subtests[3]
    assert load.name == "load" and load.status == "fail"
    assert "# null_deref: BUG: kernel NULL pointer dereference, address: 0000000000000000" in load.log
    assert any("RIP: 0010:init_oops_init+0x23/0x1000 [init_oops]" in line for line in load.log)
    assert [t.name for t in main.subtests if any("null_deref" in line for line in t.log)] == ["load"]
    assert load.subtests[0].name == "init_oops" and load.subtests[0].status == "fail"


def test_a_skipped_check_has_its_reason_and_a_failed_one_its_output():
    check = reader.parse(ktap.run_document(recorded("check_fail"))).subtests[4]
    ok, bad, skipped = check.subtests
    assert (skipped.status, skipped.directive, skipped.reason) == ("skipped", "SKIP", "only for rpi2")
    assert bad.status == "fail" and "# stdout '42' does not match '^43$'" in bad.log and "# 42" in bad.log
    assert ok.log == []


def test_a_run_stopped_before_any_phase_fails_its_first_unreached_phase():
    doc = recorded("no_such_dir")
    main = reader.parse(ktap.run_document(doc))
    build = main.subtests[0]
    assert (build.status, build.directive) == ("fail", "ERROR")
    assert build.log == [f"# usage error: {doc['error']['message']}"]
    assert [t.status for t in main.subtests[1:]] == ["skipped"] * 5 and main.status == "fail"


def test_a_skipped_run_is_all_skips_with_the_reason():
    doc = recorded("hello")
    doc.update(status="skipped", summary="skipped: BUILD_EXCLUSIVE_ARCH excludes arm64", modules=[], checks=[])
    for p in doc["phases"]:
        p["status"] = "skipped"
    main = reader.parse(ktap.run_document(doc))
    assert main.status == "skipped"
    assert {t.reason for t in main.subtests} == {"BUILD_EXCLUSIVE_ARCH excludes arm64"}


def test_the_matrix_nests_each_cells_run_under_the_cells_verdict():
    main = reader.parse(CASES["matrix"]())
    x86, arm = main.subtests
    assert (x86.name, x86.status, arm.name, arm.status) == ("x86_64-6.1", "pass", "arm64-6.1", "fail")
    assert x86.statuses() == _expected(recorded("hello")) and arm.subtests == []
    assert (arm.directive, arm.reason) == ("ERROR", "kharness run exited 2: error: no space left on device")
    two = reader.parse(ktap.matrix_document("m", [ktap.cell_node("a-6.1", "pass", "", recorded("hello")),
                                                  ktap.cell_node("b-6.1", "fail", "x", recorded("check_fail"))]))
    assert [(t.name, t.status) for t in two.subtests] == [("a-6.1", "pass"), ("b-6.1", "fail")]
    assert two.subtests[1].statuses() == _expected(recorded("check_fail"))


def test_kunit_suites_nest_under_the_phase_that_printed_them():
    doc = recorded("hello")
    doc["kunit"] = kunit_results((DATA / "console" / "x86_64-6.1-kunit_fail.log").read_text(), "load") + \
        kunit_results((DATA / "console" / "x86_64-6.1-kunit_pass.log").read_text(), "check")
    load = next(p for p in doc["phases"] if p["name"] == "load")
    load["status"] = "fail"
    main = reader.parse(ktap.run_document(doc))
    load_t, check_t = main.subtests[3], main.subtests[4]
    assert load_t.statuses()["kunit_example"] == ("fail", {"kunit_example_adds": "pass",
                                                           "kunit_example_wraps": "fail",
                                                           "kunit_example_needs_hw": "skipped"})
    wraps = load_t.subtests[1].subtests[1]
    assert wraps.log == ["# # kunit_example_wraps: EXPECTATION FAILED at /root/kunit_example/kunit_example.c:27",
                         "# Expected wrapped == 0, but", "#     wrapped == 256 (0x100)"]
    assert check_t.statuses()["kunit_example"][1]["kunit_example_params"] == (
        "pass", {"one": "pass", "two": "pass", "three": "pass"})


def test_names_and_diagnostics_cannot_break_the_document():
    doc = recorded("check_fail")
    doc["checks"][0]["name"] = "- #1: the\tanswer\n(again)"
    doc["checks"][1]["name"] = "check"                     # the name of its parent
    doc["checks"][1]["stdout"] = ("ok 1 fake\nSubtest: fake\nKTAP version 1\n1..9\n"
                                  "Kernel panic - not syncing: VFS: Unable to mount root fs\n\x1b[31mred\x1b[0m\x00")
    text = ktap.run_document(doc)
    main = reader.parse(text)                              # strict: it would raise on any of them
    check = main.subtests[4]
    assert [t.name for t in check.subtests] == ["no.1: the answer (again)", "check (in check)",
                                                "only on the Raspberry Pi 2"]
    assert "#  Subtest: fake" in check.subtests[1].log and "# red" in check.subtests[1].log
    assert "# Kernel panic - not syncing (VFS): Unable to mount root fs" in check.subtests[1].log


def test_subtests_are_indented_two_spaces_a_level():
    lines = CASES["matrix"]().splitlines()
    assert "  KTAP version 1" in lines and "    KTAP version 1" in lines
    assert {len(line) - len(line.lstrip(" ")) for line in lines} == {0, 2, 4}
    assert all("\t" not in line for line in lines)


def test_the_first_module_named_in_a_failed_unload_is_the_one_that_failed():
    doc = recorded("check_fail")
    doc["modules"] = [dict(doc["modules"][0], name=n) for n in ("a", "b", "c")]
    unload = next(p for p in doc["phases"] if p["name"] == "unload")
    unload.update(status="fail", message="rmmod b failed (exit 1): Device or resource busy")
    main = reader.parse(ktap.run_document(doc))
    # Unloaded in reverse: c went, b failed, a was not reached.
    assert main.subtests[5].statuses() == {"a": "skipped", "b": "fail", "c": "pass"}


def test_cell_node_of_a_fail_fast_skip():
    node = ktap.cell_node("rpi2-6.1", "skipped", "not run: --fail-fast after an earlier failure", None)
    main = reader.parse(ktap.document([node]))
    assert (main.subtests[0].status, main.subtests[0].reason) == ("skipped", "not run: --fail-fast after an "
                                                                             "earlier failure")


def test_the_document_does_not_change_the_result():
    doc = recorded("init_oops")
    before = copy.deepcopy(doc)
    ktap.run_document(doc)
    assert doc == before
