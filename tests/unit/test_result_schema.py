"""The result model, its document and its JSON Schema agree; real results validate against it.

docs/result-schema.md's tables and kharness/result/result.schema.json are written from the model
(``python -m kharness.result.schema --write``); these tests fail while either is stale, and
validate the results recorded from real runs (tests/data/results, see its README) against the
schema - strictly too: a key the model does not document fails.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import pytest

from kharness.result import schema as gen
from kharness.result.finding import KIND_DOCS, Finding, FindingKind
from kharness.result.model import CheckResult, Phase, Result
from kharness.result.records import BuildRecord, ImageRecord, KernelRecord, TaintRecord

RESULTS = Path(__file__).resolve().parents[1] / "data" / "results"
RECORDED = sorted(RESULTS.glob("*.json"))
Validator = jsonschema.Draft202012Validator


def _errors(doc: dict, strict: bool = False) -> list[str]:
    schema = gen.strict(gen.json_schema()) if strict else gen.json_schema()
    return [f"{e.json_path}: {e.message[:200]}" for e in Validator(schema).iter_errors(doc)]


def test_the_published_json_schema_is_what_the_model_generates():
    assert gen.SCHEMA_FILE.read_text() == gen.schema_text()
    Validator.check_schema(json.loads(gen.SCHEMA_FILE.read_text()))


def test_the_documents_tables_are_what_the_model_generates():
    doc = gen.DOC_FILE.read_text()
    assert doc.count(gen.BEGIN) == 1 and doc.count(gen.END) == 1
    block = doc[doc.index(gen.BEGIN):doc.index(gen.END) + len(gen.END)]
    assert block == gen.markdown()
    assert "kharness/result/result.schema.json" in doc   # the document points at the schema
    assert gen.main(["--check"]) == 0


def _doc_rows(doc: str, heading: str | None) -> list[str]:
    """First-column names of the table under ``### heading`` (the top table for None)."""
    text = doc[doc.index(gen.BEGIN):doc.index(gen.END)]
    if heading is not None:
        text = text.split(f"\n### {heading}\n", 1)[1]
    table = text.split("| field | type | meaning |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def test_every_field_and_kind_is_documented_and_the_document_has_no_other():
    doc = gen.DOC_FILE.read_text()
    assert _doc_rows(doc, None) == ["schema", *(f.name for f in dataclasses.fields(Result))]
    for heading, cls in (("kernel", KernelRecord), ("phases", Phase), ("checks", CheckResult),
                         ("findings", Finding), ("taint", TaintRecord), ("build", BuildRecord),
                         ("image", ImageRecord)):
        assert _doc_rows(doc, heading) == [f.name for f in dataclasses.fields(cls)], heading
        assert all(f.metadata.get("doc") for f in dataclasses.fields(cls)), heading
    kinds_table = doc.split("| kind | meaning |", 1)[1].split("\n\n", 1)[0]
    kinds = re.findall(r"^\| `(\w+)` \|", kinds_table, re.M)
    assert kinds == [k.value for k in FindingKind]
    assert set(KIND_DOCS) == set(FindingKind)


def test_the_schema_holds_the_closed_sets():
    s = gen.json_schema()
    assert s["properties"]["status"]["enum"] == ["pass", "fail", "error", "skipped"]
    assert s["$defs"]["Phase"]["properties"]["status"]["enum"] == ["pass", "fail", "error", "skipped"]
    assert s["$defs"]["Finding"]["properties"]["kind"]["enum"] == [k.value for k in FindingKind]
    assert s["$defs"]["Finding"]["required"] == ["kind", "summary", "report", "line", "module", "phase", "blocking"]


def test_there_are_recorded_results_of_every_verdict_and_the_harness_kinds():
    docs = [json.loads(p.read_text()) for p in RECORDED]
    assert {d["status"] for d in docs} == {"pass", "fail", "error"}
    kinds = {f["kind"] for d in docs for f in d["findings"]}
    assert {"hang", "channel_lost", "null_deref", "taint"} <= kinds


@pytest.mark.parametrize("path", RECORDED, ids=[p.name for p in RECORDED])
def test_a_recorded_result_validates(path):
    doc = json.loads(path.read_text())
    assert _errors(doc) == []
    assert _errors(doc, strict=True) == []


def test_the_schema_rejects_what_the_model_does_not_allow():
    doc = json.loads((RESULTS / "init_oops.json").read_text())
    for change in (lambda d: d["findings"][0].update(kind="explosion"),
                   lambda d: d.update(status="maybe"),
                   lambda d: d["phases"][0].update(status="running"),
                   lambda d: d["findings"][0].pop("blocking"),
                   lambda d: d["kernel"].pop("release")):
        bad = copy.deepcopy(doc)
        change(bad)
        assert _errors(bad), change
    # An unknown key is fine for consumers (fields are only ever added in v1), not for the model.
    extra = copy.deepcopy(doc)
    extra["kernel"]["new_field"] = 1
    assert _errors(extra) == [] and _errors(extra, strict=True)


def test_a_result_with_every_optional_part_validates():
    r = Result("/m", "x86_64", "default", status="fail", accelerator="tcg", compiler="gcc", started=0.0)
    r.kernel = KernelRecord("6.1.0-kh", "6.1", "", "", None, built_from={"tree": "/t", "git_head": "abc"},
                            config_fragments=["a.config"], build_tree="/b", debug=["kasan"])
    r.build = BuildRecord(True, "make", "/b", None, "gcc",
                          [{"file": "m.c", "line": 3, "column": None, "severity": "warning", "message": "w",
                            "tool": "gcc"}], environment={"suite": "sid", "packages": []},
                          khgpio={"cached": True, "directory": "/g"})
    r.image = ImageRecord("/i", "k", {"name": "busybox-static"}, "/vmlinuz", snapshot="/s")
    r.taint = TaintRecord(512, "W", ["W: kernel issued warning"])
    r.checks.append(CheckResult("c", "true", "skipped", None, 0))
    r.findings.append(Finding("hang", "insmod m did not return", "sysrq", 0, phase="load", blocking=True))
    r.error = {"kind": "usage", "message": "m"}
    assert _errors(r.to_dict(), strict=True) == []
