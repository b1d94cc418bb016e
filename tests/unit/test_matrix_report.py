"""kharness matrix: planning, sharding, baseline comparison and the report writers (pure)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from kharness.errors import UsageError
from kharness.matrix import emit
from kharness.matrix.execute import CellResult
from kharness.matrix.plan import Cell, plan
from kharness.matrix.report import compare, html_report, junit, summary
from kharness.targets import all_targets

T = all_targets()


def test_plan_defaults_filters_and_shards():
    cells = plan(T, None, None)
    assert len(cells) == sum(len(p.series) for p in T.values())
    two = plan(T, "x86_64,arm64", "6.1,6.12")
    assert [c.id for c in two] == ["x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12"]
    shards = [plan(T, "x86_64,arm64", "6.1,6.12", f"{i}/3") for i in (1, 2, 3)]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in two)   # a partition
    assert all(len(s) >= 1 for s in shards)


@pytest.mark.parametrize("targets,kernels,shard,needle", [
    ("x86_64,vax", None, None, "unknown target(s) vax"),
    (None, "4.19", None, "unknown kernel series 4.19"),
    ("x86_64", "6.1", "0/2", "--shard '0/2' is not I/N"),
    ("x86_64", "6.1", "x", "is not I/N"),
])
def test_plan_errors(targets, kernels, shard, needle):
    with pytest.raises(UsageError, match=__import__("re").escape(needle)):
        plan(T, targets, kernels, shard)


def _r(t, k, status, dur=1.0):
    return CellResult(Cell(t, k), status, f"{status} summary <b>", dur, f"{k}.0-x", "tcg",
                      {"result": f"cells/{t}-{k}/result.json"})


def test_baseline_puts_newly_broken_first(tmp_path):
    results = [_r("x86_64", "6.1", "pass"), _r("x86_64", "6.12", "fail"), _r("arm64", "6.1", "error"),
               _r("arm64", "6.12", "pass")]
    base = {"cells": [{"id": "x86_64-6.1", "status": "pass"}, {"id": "x86_64-6.12", "status": "pass"},
                      {"id": "arm64-6.1", "status": "error"}, {"id": "arm64-6.12", "status": "fail"}]}
    ch = compare(results, base)
    assert ch == {"x86_64-6.1": "", "x86_64-6.12": "newly broken", "arm64-6.1": "still failing",
                  "arm64-6.12": "fixed"}
    s = summary("m", results, 10, ch)
    assert s["cells"][0]["id"] == "x86_64-6.12" and s["counts"] == {"pass": 2, "fail": 1, "error": 1, "skipped": 0}
    json.dumps(s)
    junit(results, tmp_path / "j.xml")
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    page = html_report("m", results, ch, 10)
    assert page.count('class="cell"') == 4 and "newly broken" in page and "&lt;b&gt;" in page and "<b>" not in page
    assert 'href="cells/x86_64-6.1/result.json"' in page


def test_emitters():
    cells = plan(T, "x86_64", "6.1,7.2")
    assert json.loads(emit.github(cells)) == {"include": [{"target": "x86_64", "kernel": "6.1"},
                                                          {"target": "x86_64", "kernel": "7.2"}]}
    g = emit.gitlab(cells, "mymod")
    assert 'KH_TARGET: x86_64, KH_KERNEL: "7.2"' in g and "parallel:" in g
