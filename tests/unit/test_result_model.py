"""Unit tests for kharness.result: the one cap(), the v1 result dict, exit codes, the typed model
(closed finding kinds, status enums, kernel/build/image/taint records), the status colours."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kharness.result import model
from kharness.result.model import (
    EXIT_CODES,
    LOG_CAP,
    PHASES,
    SCHEMA,
    CheckResult,
    Result,
    cap,
)
from kharness.result.finding import FIELDS, HARNESS_KINDS, Finding, FindingKind
from kharness.result.records import BuildRecord, ImageRecord, KernelRecord, TaintRecord
from kharness.result.status import HTML_COLOUR, STYLE, CheckStatus, PhaseStatus, RunStatus


def test_cap_short_text_untouched():
    assert cap("short") == "short"
    assert cap("x" * 10, limit=10) == "x" * 10


def test_cap_keeps_head_and_tail_within_the_limit():
    text = "H" * 60 + "M" * 100 + "T" * 60
    out = cap(text, limit=100)
    # 31 bytes of marker, 69 kept: 34 of the head, 35 of the tail; 151 left out.
    assert out == "H" * 34 + "\n[... truncated 151 bytes ...]\n" + "T" * 35
    assert len(out.encode()) == 100


def test_cap_default_limit_includes_the_marker():
    text = "a" * LOG_CAP + "b" * 10
    out = cap(text)
    assert len(out.encode()) <= LOG_CAP
    head, marker, tail = out.partition("\n[... truncated ")
    assert marker and head == "a" * len(head) and tail.endswith("b" * 10)
    dropped = int(tail.split(" ", 1)[0])
    assert len(head) + dropped + len(tail.split("...]\n", 1)[1]) == len(text)


def test_cap_cuts_at_line_boundaries():
    text = "".join(f"line {i:04d}\n" for i in range(1000))   # 10 bytes a line
    out = cap(text, limit=200)
    head, _, rest = out.partition("\n[... truncated ")
    dropped, _, tail = rest.partition(" bytes ...]\n")
    assert head.startswith("line 0000\nline 0001") and head.endswith("line 0007")   # whole lines only
    assert tail.startswith("line 09") and tail.endswith("line 0999\n")
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) + int(dropped) + len(tail) == len(text)


def test_cap_head_share():
    text = "x" * 1000
    out = cap(text, limit=132, head=0.75)   # 100 bytes kept besides a marker sized for 1000
    head, _, tail = out.partition("\n[... truncated 900 bytes ...]\n")
    assert (len(head), len(tail)) == (75, 25)


def test_cap_counts_bytes_and_never_splits_characters():
    text = "é" * 100  # 200 bytes
    out = cap(text, limit=131)   # 30 bytes of marker, 101 to keep: 50 + 51, less the split character
    head, marker, tail = out.partition("\n[... truncated 100 bytes ...]\n")
    assert marker
    assert head == "é" * 25          # 50 bytes: 25 whole characters
    assert tail == "é" * 25          # 51 bytes from the end start inside a character: 25 kept
    assert cap("é" * 50, limit=100) == "é" * 50


def test_the_scanner_and_the_model_share_one_cap():
    from kharness import health
    from kharness.result import cap as cap_module

    assert model.cap is cap_module.cap and health.scan.cap is cap_module.cap
    assert health.REPORT_LIMIT == cap_module.REPORT_CAP == 16 << 10
    assert not hasattr(health.scan, "_cap")


def test_result_defaults_and_phases():
    r = Result("/m", "x86_64", "6.1")
    assert [p.name for p in r.phases] == ["build", "image", "boot", "load", "check", "unload"]
    assert PHASES == ("build", "image", "boot", "load", "check", "unload")
    assert all(p.status == "skipped" for p in r.phases)
    assert r.phase("load") is r.phases[3]
    assert r.status == "error"
    assert Result("/m", "x86_64", "6.1").phases[0] is not r.phases[0]


@pytest.mark.parametrize("status,code", [("pass", 0), ("fail", 1), ("error", 2)])
def test_exit_code(status, code):
    r = Result("/m", "x86_64", "6.1", status=status)
    assert r.exit_code == code
    assert EXIT_CODES[status] == code


def test_exit_code_unknown_status():
    with pytest.raises(KeyError):
        Result("/m", "x86_64", "6.1", status="maybe").exit_code


def test_to_dict():
    r = Result("/home/u/mod", "x86_64", "6.1", status="fail", summary="load failed",
               started=0.0, duration=1.23456)
    r.phase("build").status = "pass"
    r.phase("build").duration = 0.12349
    r.phase("load").log = "L" * (LOG_CAP + 2)
    r.checks.append(CheckResult("c", "true", "pass", 0, 0, stdout="o" * (LOG_CAP + 1), duration=0.0004))
    r.dmesg = {"load": "d" * (LOG_CAP + 4), "unload": "ok"}
    d = r.to_dict()
    assert list(d)[0] == "schema"
    assert d["schema"] == SCHEMA == "kharness/result/v1"
    assert d["status"] == "fail"
    assert d["started"] == "1970-01-01T00:00:00Z"
    assert d["duration"] == 1.235
    assert [p["name"] for p in d["phases"]] == list(PHASES)
    assert d["phases"][0] == {"name": "build", "status": "pass", "duration": 0.123, "message": "",
                              "log": "", "details": {}}
    assert "bytes ...]" in d["phases"][3]["log"] and len(d["phases"][3]["log"]) <= LOG_CAP
    assert d["checks"][0]["duration"] == 0.0
    assert "bytes ...]" in d["checks"][0]["stdout"] and len(d["checks"][0]["stdout"]) <= LOG_CAP
    assert d["checks"][0]["stderr"] == ""
    assert "bytes ...]" in d["dmesg"]["load"] and len(d["dmesg"]["load"]) <= LOG_CAP
    assert d["dmesg"]["unload"] == "ok"
    assert d["error"] is None
    json.dumps(d)  # serialisable as is
    # to_dict does not modify the result itself
    assert len(r.phase("load").log) == LOG_CAP + 2
    assert r.duration == 1.23456


def test_to_dict_keys():
    d = Result("/m", "x86_64", "6.1").to_dict()
    assert set(d) == {"schema", "module_dir", "target", "kernel_wanted", "status", "summary", "kernel",
                      "guest", "accelerator", "accelerator_note", "boot_mode", "boot_mode_note", "compiler", "params", "gpio", "modules", "phases", "checks",
                      "findings", "taint", "dmesg", "build", "image", "error", "traceback", "reproducer",
                      "artifacts", "started", "duration"}
    assert d["traceback"] == ""


# -- the typed model -------------------------------------------------------------------------------

def test_finding_kinds_are_a_closed_set_checked_on_construction():
    with pytest.raises(ValueError, match="unknown finding kind 'explosion'"):
        Finding("explosion", "s", "r", 0)
    with pytest.raises(ValueError, match="line must be >= 0"):
        Finding("oops", "s", "r", -1)
    f = Finding("hang", "insmod x did not return within its timeout (hang)", "sysrq", 0)
    assert f.kind is FindingKind.HANG and f.kind == "hang"


def test_every_kind_the_runner_makes_is_in_the_closed_set():
    from kharness import health

    assert set(health.KINDS) | HARNESS_KINDS == set(FindingKind)
    assert not set(health.KINDS) & HARNESS_KINDS
    assert {"hang", "channel_lost"} == HARNESS_KINDS


def test_a_placed_finding_is_written_with_every_field_in_order():
    f = Finding(FindingKind.CHANNEL_LOST, "the command channel went silent", "console", 0, module="channel_kill")
    assert list(f.to_dict()) == ["kind", "summary", "report", "line", "module"]   # not placed yet
    placed = dataclasses.replace(f, phase="load", blocking=True)
    d = placed.to_dict()
    assert list(d) == list(FIELDS)
    assert d == {"kind": "channel_lost", "summary": "the command channel went silent", "report": "console",
                 "line": 0, "module": "channel_kill", "phase": "load", "blocking": True}
    assert type(d["kind"]) is str
    # Read by key, as code written when findings were dicts (Session.health()'s callers) does.
    assert placed["kind"] == "channel_lost" and placed["blocking"] is True and placed.get("nope", 1) == 1
    with pytest.raises(KeyError):
        placed["nope"]


def test_result_writes_findings_and_records_as_the_same_json_as_before():
    r = Result("/m", "x86_64", "default", status=RunStatus.FAIL, started=0.0)
    r.kernel = KernelRecord("6.1.0-50-amd64", "6.1", "bookworm", "6.1.176-1", "gcc-12", packages=[])
    r.build = BuildRecord(cached=True, command="make", directory="/b", generated_makefile=None, compiler="gcc",
                          diagnostics=[])
    r.image = ImageRecord(base="/i", key="k", busybox={"name": "busybox-static"}, kernel="/vmlinuz")
    r.taint = TaintRecord(12288, "OE", ["O: x", "E: y"])
    r.findings.append(Finding("taint", "kernel tainted: W", "taint 512", 0, phase="load", blocking=True))
    r.phase("build").status = PhaseStatus.PASS
    d = r.to_dict()
    assert d["status"] == "fail" and type(d["status"]) is str
    assert type(d["phases"][0]["status"]) is str
    assert d["kernel"] == {"release": "6.1.0-50-amd64", "series": "6.1", "suite": "bookworm",
                           "version": "6.1.176-1", "gcc": "gcc-12", "packages": []}
    assert d["build"] == {"cached": True, "command": "make", "directory": "/b", "generated_makefile": None,
                          "compiler": "gcc", "diagnostics": []}
    assert d["image"] == {"base": "/i", "key": "k", "busybox": {"name": "busybox-static"}, "kernel": "/vmlinuz"}
    assert d["taint"] == {"value": 12288, "flags": "OE", "decoded": ["O: x", "E: y"]}
    assert d["findings"] == [{"kind": "taint", "summary": "kernel tainted: W", "report": "taint 512", "line": 0,
                              "module": None, "phase": "load", "blocking": True}]
    json.dumps(d)
    # Optional fields appear once set, in field order, as the runner's dicts had them.
    r.build.environment = {"suite": "sid", "packages": []}
    r.build.khgpio = {"cached": True, "directory": "/g"}
    r.image.snapshot = "/s"
    assert list(r.to_dict()["build"])[-2:] == ["environment", "khgpio"]
    assert r.to_dict()["image"]["snapshot"] == "/s"
    # The dict a result holds is a copy: writing it never aliases the live record.
    r.to_dict()["image"]["busybox"]["name"] = "changed"
    assert r.image.busybox["name"] == "busybox-static"


def test_records_not_reached_are_written_as_empty_objects():
    d = Result("/m", "x86_64", "6.1").to_dict()
    assert (d["kernel"], d["build"], d["image"], d["taint"], d["findings"]) == ({}, {}, {}, {}, [])


def test_a_self_built_kernel_record():
    k = KernelRecord("6.1.0-kh", "6.1", "", "", None, built_from={"tree": "/t", "git_head": "abc"},
                     config_fragments=["a.config"], build_tree="/b")
    assert list(k.to_dict()) == ["release", "series", "suite", "version", "gcc", "packages", "built_from",
                                 "config_fragments", "build_tree"]
    k.debug = ["kasan"]
    # A debug kernel always says how long its build took, null when that was not recorded.
    assert k.to_dict()["build_seconds"] is None and k.to_dict()["debug"] == ["kasan"]
    assert k["release"] == "6.1.0-kh" and k.get("debug") == ["kasan"]


def test_statuses_are_the_same_strings():
    assert [s.value for s in RunStatus] == ["pass", "fail", "error", "skipped"]
    assert EXIT_CODES[RunStatus.SKIPPED] == 0   # a cell the module's own files exclude is no failure
    assert {s.value for s in CheckStatus} == {"pass", "fail", "skipped"}
    assert PhaseStatus.SKIPPED == "skipped" and f"{PhaseStatus.FAIL}" == "fail"
    assert json.dumps([RunStatus.PASS]) == '["pass"]'
    assert EXIT_CODES[RunStatus.FAIL] == EXIT_CODES["fail"] == 1


def test_one_status_colour_table():
    from kharness.matrix import execute, report
    from kharness.result import writers

    assert set(STYLE) == set(HTML_COLOUR) == {"pass", "fail", "error", "skipped"}
    for module in (execute, report, writers):
        text = open(module.__file__).read()
        assert '"magenta"' not in text and "#c62828" not in text, module.__name__
