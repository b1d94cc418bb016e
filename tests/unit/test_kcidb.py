"""`--kcidb` (kharness/result/kcidb.py and the host side in kharness/cli/interchange.py): recorded
results as KCIDB data, validated by KernelCI's own schema package, kcidb-io (offline)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import kcidb_io
import pytest

from kharness.cells import Cell
from kharness.cli import interchange
from kharness.health import ktap as reader
from kharness.health.kunit import kunit_results
from kharness.result import kcidb

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = sorted((DATA / "results").glob("*.json"))
SCHEMA = kcidb_io.schema.LATEST
SOURCE = {"key": "sha256-0123", "module_dir": "examples/hello", "content_sha256": "0123" * 16}


def recorded(name: str) -> dict:
    return json.loads((DATA / "results" / f"{name}.json").read_text())


def test_the_writer_speaks_the_latest_version_kcidb_io_knows():
    assert kcidb.VERSION == {"major": SCHEMA.major, "minor": SCHEMA.minor}


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_every_recorded_result_is_valid_kcidb(path):
    data = kcidb.document(SOURCE, [(json.loads(path.read_text()), "x86_64")])
    SCHEMA.validate_exactly(data)
    assert SCHEMA.is_compatible_exactly(data)


def test_a_failing_check_and_a_skipped_one():
    data = kcidb.document(SOURCE, [(recorded("check_fail"), "x86_64")])
    (checkout,), (build,), tests = data["checkouts"], data["builds"], data["tests"]
    assert checkout["id"] == "kharness:sha256-0123" and checkout["origin"] == "kharness"
    assert build["checkout_id"] == checkout["id"] and build["status"] == "PASS"
    assert (build["architecture"], build["config_name"]) == ("x86_64", "6.1.0-50-amd64")
    assert build["compiler"].startswith("gcc-12") and build["duration"] > 0
    got = {t["path"]: t["status"] for t in tests}
    assert got == {"kharness.build": "PASS", "kharness.image": "PASS", "kharness.boot": "PASS",
                   "kharness.load": "PASS", "kharness.check": "FAIL", "kharness.unload": "PASS",
                   "kharness.check.the_answer_is_visible_in_sysfs": "PASS",
                   "kharness.check.the_answer_is_43": "FAIL",
                   "kharness.check.only_on_the_Raspberry_Pi_2": "SKIP"}
    bad = next(t for t in tests if t["path"] == "kharness.check.the_answer_is_43")
    assert bad["id"] == f"{build['id']}:kharness.check.the_answer_is_43" and bad["build_id"] == build["id"]
    assert "does not match" in bad["log_excerpt"] and bad["misc"]["rc"] == 0
    assert bad["environment"]["comment"] == "QEMU x86_64 (tcg)"
    assert bad["misc"]["kernel_release"] == "6.1.0-50-amd64"
    assert len({t["id"] for t in tests}) == len(tests)


def test_an_oops_is_in_its_phases_log_excerpt_and_an_error_misses_the_rest():
    tests = kcidb.document(SOURCE, [(recorded("init_oops"), "x86_64")])["tests"]
    load = next(t for t in tests if t["path"] == "kharness.load")
    assert load["status"] == "FAIL" and "BUG: kernel NULL pointer dereference" in load["log_excerpt"]
    assert load["misc"]["findings"][0].startswith("null_deref: ")
    assert {t["path"]: t["status"] for t in tests}["kharness.check"] == "SKIP"
    data = kcidb.document(SOURCE, [(recorded("no_such_dir"), "x86_64")])
    assert data["builds"][0]["status"] == "ERROR"
    assert [t["status"] for t in data["tests"]] == ["ERROR", "MISS", "MISS", "MISS", "MISS", "MISS"]


def test_kunit_cases_are_tests_of_their_own():
    doc = recorded("hello")
    doc["kunit"] = kunit_results((DATA / "console" / "x86_64-6.1-kunit_crash.log").read_text(), "load")
    data = kcidb.document(SOURCE, [(doc, "x86_64")])
    SCHEMA.validate_exactly(data)
    kunit = {t["path"]: (t["status"], t["misc"]["kunit_status"]) for t in data["tests"] if ".kunit." in t["path"]}
    assert kunit == {"kharness.kunit.kunit_example.kunit_example_adds": ("PASS", "pass"),
                     "kharness.kunit.kunit_example.case_2": ("FAIL", "crashed"),
                     "kharness.kunit.kunit_example.case_3": ("FAIL", "crashed")}


def test_what_kcidb_cannot_hold_is_left_out_or_reworded():
    doc = recorded("check_fail")
    doc["checks"][0]["name"] = "ünïcode / and.dots"
    doc["checks"][1]["name"] = "ünïcode & and-dots"       # the same path once cleaned
    doc["checks"][1]["stdout"] = "nul \x00 byte" + "x" * 40000
    doc["compiler"] = None
    data = kcidb.document(SOURCE, [(doc, "Weird-Arch")])
    SCHEMA.validate_exactly(data)
    paths = [t["path"] for t in data["tests"] if t["path"].startswith("kharness.check.")]
    assert paths == ["kharness.check.n_code_and_dots", "kharness.check.n_code_and-dots",
                     "kharness.check.only_on_the_Raspberry_Pi_2"]
    assert data["builds"][0]["architecture"] == "weird_arch"
    assert all(len(t.get("log_excerpt", "")) <= 16384 for t in data["tests"])


def test_a_matrix_is_one_checkout_and_a_build_per_cell(tmp_path):
    out = tmp_path / "matrix"
    for cell, name in (("x86_64-6.1", "hello"), ("x86_64-6.1-bis", "check_fail")):
        (out / "cells" / cell).mkdir(parents=True)
        (out / "cells" / cell / "result.json").write_text((DATA / "results" / f"{name}.json").read_text())
    results = [SimpleNamespace(cell=Cell("x86_64", "6.1"), status="pass", summary="",
                               files={"result": "cells/x86_64-6.1/result.json"}),
               SimpleNamespace(cell=SimpleNamespace(id="x86_64-6.1-bis"), status="fail", summary="check: ...",
                               files={"result": "cells/x86_64-6.1-bis/result.json"}),
               SimpleNamespace(cell=Cell("arm64", "6.1"), status="error", summary="kharness run exited 2: boom",
                               files={"output": "cells/arm64-6.1/output.log"})]
    module = tmp_path / "mod"
    module.mkdir()
    (module / "m.c").write_text("int x;\n")
    interchange.write_matrix(out, module, results, tmp_path / "m.ktap", tmp_path / "m.json")
    data = json.loads((tmp_path / "m.json").read_text())
    SCHEMA.validate_exactly(data)
    assert len(data["checkouts"]) == 1 and len(data["builds"]) == 2
    assert len({b["id"] for b in data["builds"]}) == 2
    main = reader.parse((tmp_path / "m.ktap").read_text())
    assert [(t.name, t.status) for t in main.subtests] == [("x86_64-6.1", "pass"), ("x86_64-6.1-bis", "fail"),
                                                           ("arm64-6.1", "fail")]


# --- the checkout: git or a content hash ------------------------------------------------------

def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_a_git_work_tree_is_its_commit_and_a_token_never_leaves(tmp_path):
    repo = tmp_path / "repo"
    (repo / "mod").mkdir(parents=True)
    (repo / "mod" / "m.c").write_text("int x;\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
    _git(repo, "remote", "add", "origin", "https://user:s3cret@code.example.invalid/team/mod.git")
    src = interchange.source_identity(repo / "mod")
    commit = _git(repo, "rev-parse", "HEAD")
    assert src["key"] == commit and src["git"]["dirty"] is False and src["git"]["branch"] == "main"
    assert src["git"]["url"] == "https://code.example.invalid/team/mod.git"
    checkout = kcidb.document(src, [(recorded("hello"), "x86_64")])["checkouts"][0]
    assert checkout["git_commit_hash"] == commit and checkout["patchset_hash"] == ""
    assert "s3cret" not in json.dumps(checkout)
    (repo / "mod" / "m.c").write_text("int y;\n")
    dirty = interchange.source_identity(repo / "mod")
    assert dirty["key"].startswith(f"{commit}-dirty-") and dirty["git"]["dirty"] is True
    data = kcidb.document(dirty, [(recorded("hello"), "x86_64")])
    SCHEMA.validate_exactly(data)
    assert "patchset_hash" not in data["checkouts"][0]


def test_outside_git_the_checkout_is_the_content_hash(tmp_path):
    (tmp_path / "m.c").write_text("int x;\n")
    (tmp_path / "m.o").write_bytes(b"\x7fELF")      # a build product is not a source
    a = interchange.source_identity(tmp_path)
    (tmp_path / "m.o").write_bytes(b"\x7fELF changed")
    assert interchange.source_identity(tmp_path)["key"] == a["key"] and "git" not in a
    (tmp_path / "m.c").write_text("int y;\n")
    assert interchange.source_identity(tmp_path)["key"] != a["key"]
    assert a["key"] == f"sha256-{a['content_sha256'][:32]}"


@pytest.mark.parametrize("remote, url", [
    ("git@code.example.invalid:team/mod.git", "https://code.example.invalid/team/mod.git"),
    ("ssh://git@code.example.invalid:2222/team/mod.git", "https://code.example.invalid/team/mod.git"),
    ("https://tok@code.example.invalid/team/mod", "https://code.example.invalid/team/mod"),
    ("/srv/git/mod.git", None),
    ("../mod.git", None),
    ("file:///srv/git/mod.git", None),
    ("myalias:team/mod.git", None),
])
def test_remotes_become_https_urls_without_credentials(remote, url):
    assert interchange.https_url(remote) == url


def test_output_paths_are_checked_before_any_work(tmp_path):
    from kharness.errors import UsageError

    with pytest.raises(UsageError, match="--ktap .* is a directory"):
        interchange.check_outputs(tmp_path, None)
    with pytest.raises(UsageError, match="--kcidb .*does not exist"):
        interchange.check_outputs(None, tmp_path / "nowhere" / "k.json")
    interchange.check_outputs(tmp_path / "a.ktap", tmp_path / "a.json")


def test_the_validator_refuses_what_the_writer_takes_care_to_avoid():
    """The checks above can fail: kcidb-io rejects a null, a path with a space, a bad status."""
    import jsonschema

    good = kcidb.document(SOURCE, [(recorded("hello"), "x86_64")])
    for path, value in ((("builds", 0, "compiler"), None), (("tests", 0, "path"), "kharness.a b"),
                        (("tests", 0, "status"), "OK"), (("checkouts", 0, "id"), "no-origin")):
        bad = json.loads(json.dumps(good))
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            SCHEMA.validate_exactly(bad)
