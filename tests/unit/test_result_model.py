"""Unit tests for kharness.result.model: log capping, the v1 result dict, exit codes."""

from __future__ import annotations

import json

import pytest

from kharness.result.model import (
    EXIT_CODES,
    LOG_CAP,
    PHASES,
    SCHEMA,
    CheckResult,
    Result,
    cap,
)


def test_cap_short_text_untouched():
    assert cap("short") == "short"
    assert cap("x" * 10, limit=10) == "x" * 10


def test_cap_keeps_head_and_tail():
    text = "H" * 60 + "M" * 100 + "T" * 60
    out = cap(text, limit=100)
    assert out == "H" * 50 + "\n[... 120 bytes truncated ...]\n" + "T" * 50


def test_cap_default_limit():
    text = "a" * LOG_CAP + "b" * 10
    out = cap(text)
    assert out.startswith("a" * (LOG_CAP // 2) + "\n[... 10 bytes truncated ...]\n")
    assert out.endswith("b" * 10)
    assert len(out.encode()) == LOG_CAP + len("\n[... 10 bytes truncated ...]\n")


def test_cap_counts_bytes_and_never_splits_characters():
    text = "é" * 100  # 200 bytes
    out = cap(text, limit=101)
    head, marker, tail = out.partition("\n[... 99 bytes truncated ...]\n")
    assert marker
    assert head == "é" * 25          # 50 bytes: 25 whole characters
    assert tail == "é" * 25
    assert cap("é" * 50, limit=100) == "é" * 50


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
    assert "[... 2 bytes truncated ...]" in d["phases"][3]["log"]
    assert d["checks"][0]["duration"] == 0.0
    assert "[... 1 bytes truncated ...]" in d["checks"][0]["stdout"]
    assert d["checks"][0]["stderr"] == ""
    assert "[... 4 bytes truncated ...]" in d["dmesg"]["load"]
    assert d["dmesg"]["unload"] == "ok"
    assert d["error"] is None
    json.dumps(d)  # serialisable as is
    # to_dict does not modify the result itself
    assert len(r.phase("load").log) == LOG_CAP + 2
    assert r.duration == 1.23456


def test_to_dict_keys():
    d = Result("/m", "x86_64", "6.1").to_dict()
    assert set(d) == {"schema", "module_dir", "target", "kernel_wanted", "status", "summary", "kernel",
                      "accelerator", "accelerator_note", "boot_mode", "boot_mode_note", "compiler", "params", "gpio", "modules", "phases", "checks",
                      "findings", "taint", "dmesg", "build", "image", "error", "traceback", "reproducer",
                      "artifacts", "started", "duration"}
    assert d["traceback"] == ""
