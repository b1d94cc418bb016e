"""`kharness run --ktap --kcidb` end to end on x86_64 (Debian 6.1): the files a real run writes are
read back by the strict KTAP reader and validated by KernelCI's kcidb-io, and say what the
result says. Each test boots (restoring the ready snapshot)."""

from __future__ import annotations

import json

import kcidb_io
import pytest

from conftest import EXAMPLES, FIXTURES
from kharness.health import ktap

pytestmark = pytest.mark.vm


def _run(kharness, tmp_path, module):
    o = kharness("run", str(module), "--ktap", str(tmp_path / "out.ktap"), "--kcidb", str(tmp_path / "out.json"))
    assert "Traceback" not in o.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    kcidb_io.schema.LATEST.validate_exactly(data)
    return o, ktap.parse((tmp_path / "out.ktap").read_text()), data


def test_a_passing_run_as_ktap_and_kcidb(kharness, tmp_path):
    o, main, data = _run(kharness, tmp_path, EXAMPLES / "hello")
    assert o.rc == 0, o.stderr
    assert main.status == "pass" and [t.name for t in main.subtests] == list(
        p["name"] for p in o.result["phases"])
    assert main.statuses()["load"] == ("pass", {"hello": "pass"})
    assert main.log[-1] == f"# verdict: pass: {o.result['summary']}"
    (build,) = data["builds"]
    assert build["status"] == "PASS" and build["architecture"] == "x86_64"
    assert build["config_name"] == o.result["kernel"]["release"]
    assert {t["status"] for t in data["tests"]} == {"PASS"} and len(data["tests"]) == 6 + 3
    # examples/hello lies in kharness's own git work tree: the checkout is its commit.
    assert len(data["checkouts"][0]["git_commit_hash"]) == 40


def test_a_failing_and_a_skipped_check_as_ktap_and_kcidb(kharness, tmp_path):
    o, main, data = _run(kharness, tmp_path, FIXTURES / "check_fail")
    assert o.rc == 1 and o.result["summary"].startswith("check: 1 of 3 check(s) failed")
    assert main.status == "fail"
    assert main.statuses()["check"] == ("fail", {"the answer is visible in sysfs": "pass",
                                                 "the answer is 43": "fail",
                                                 "only on the Raspberry Pi 2": "skipped"})
    assert main.subtests[5].status == "pass"             # unloaded after the failed check
    tests = {t["path"]: t["status"] for t in data["tests"]}
    assert tests["kharness.check"] == "FAIL" and tests["kharness.check.the_answer_is_43"] == "FAIL"
    assert tests["kharness.check.only_on_the_Raspberry_Pi_2"] == "SKIP"


def test_bad_output_paths_stop_before_any_work(kharness, tmp_path):
    o = kharness("run", str(EXAMPLES / "hello"), "--ktap", str(tmp_path), json_out=False)
    assert o.rc == 2 and "--ktap" in o.stderr and "is a directory" in o.stderr
    o = kharness("matrix", str(EXAMPLES / "hello"), "--targets", "x86_64", "--kernels", "6.1",
                 "--out", str(tmp_path / "m"), "--kcidb", str(tmp_path / "no" / "k.json"), json_out=False)
    assert o.rc == 2 and "--kcidb" in o.stderr and not (tmp_path / "m" / "cells").exists()


def test_a_matrix_cell_nests_its_run(kharness, tmp_path):
    o = kharness("matrix", str(FIXTURES / "check_fail"), "--targets", "x86_64", "--kernels", "6.1",
                 "--out", str(tmp_path / "m"), "--ktap", str(tmp_path / "m.ktap"), "--kcidb", str(tmp_path / "m.json"),
                 json_out=False)
    assert o.rc == 1, o.stderr
    main = ktap.parse((tmp_path / "m.ktap").read_text())
    (cell,) = main.subtests
    assert (cell.name, cell.status) == ("x86_64-6.1", "fail")
    assert cell.statuses()["check"][1]["the answer is 43"] == "fail"
    data = json.loads((tmp_path / "m.json").read_text())
    kcidb_io.schema.LATEST.validate_exactly(data)
    assert [b["status"] for b in data["builds"]] == ["PASS"]
