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
    assert 'KH_TARGET: "x86_64", KH_KERNEL: "7.2"' in g and "parallel:" in g


NASTY = ("\x1b[31mred\x1b[0m console \x00nul \x07bell \x1b]0;title\x07osc \x08bs \x7fdel \x85nel "
         "\ud800lone \ufffenon tab\tnl\nend <&> stray\x1b")


def _nasty_results():
    bad = CellResult(Cell("x86_64", "6.1"), "fail", f"load: kernel reported oops: {NASTY}", 1.0,
                     "6.1.0-\x1b[1m50\x1b[0m-amd64\x00", "tcg\x07", {"output\x1b": "cells/x\x00/output.log"})
    return [bad, CellResult(Cell("x86_64", "6.12"), "error", NASTY, 2.0),
            CellResult(Cell("arm64", "6.1"), "skipped", NASTY)]


def _raw_controls(text: str) -> list[str]:
    """Characters XML 1.0 forbids, or that HTML forbids raw (DEL, C1), or lone surrogates."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\t\n\r") or 0x7f <= ord(c) <= 0x9f
            or 0xd800 <= ord(c) <= 0xdfff or c in "\ufffe\uffff"]


def test_junit_is_well_formed_whatever_the_messages_hold(tmp_path):
    junit(_nasty_results(), tmp_path / "j.xml")
    raw = (tmp_path / "j.xml").read_bytes().decode("utf-8")
    assert _raw_controls(raw) == []
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")     # raises if not well-formed
    failure = suite.find("testcase/failure")
    # Colour sequences are gone; other controls stay visible as \xNN; the text around them stays.
    assert failure.text.startswith("load: kernel reported oops: red console \\x00nul \\x07bell osc \\x08bs")
    assert failure.text.endswith("\\x7fdel \\x85nel \\ud800lone \\ufffenon tab\tnl\nend <&> stray\\x1b")
    assert "\x1b" not in failure.get("message") and "[31m" not in failure.get("message")
    props = {p.get("name"): p.get("value") for p in suite.find("testcase").iter("property")}
    assert props["release"] == "6.1.0-50-amd64\\x00" and props["accelerator"] == "tcg\\x07"
    assert suite.find("testcase/error") is not None and suite.find(".//skipped") is not None


def test_html_has_no_raw_control_characters():
    page = html_report("mod\x1b[0m\x00", _nasty_results(), {}, 3)
    assert _raw_controls(page) == []
    assert "red console \\x00nul" in page and "&lt;&amp;&gt;" in page and "<&>" not in page
    assert 'href="cells/x\\x00/output.log"' in page and "mod\\x00" in page


@pytest.mark.parametrize("text,want", [
    ("plain", "plain"),
    ("\x1b[1;31mbold red\x1b[0m", "bold red"),
    ("\x1b[?25lcursor\x1b[?25h", "cursor"),
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("\x1bcreset", "reset"),
    ("\x1b(Bsgr0\x1b7saved\x1b8", "sgr0saved"),
    ("\x00\x1f\x7f", "\\x00\\x1f\\x7f"),
    ("ünïcödé ✓ 𝄞", "ünïcödé ✓ 𝄞"),
])
def test_clean(text, want):
    from kharness.matrix.report import clean
    assert clean(text) == want
