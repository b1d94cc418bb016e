"""The boundary for unexpected exceptions (a bug, an unforeseen host failure): the runner and the
CLI turn them into infrastructure errors with their traceback. The real CLI is exercised in
tests/integration/test_exit_codes.py; these use raising callables in place of a pipeline."""

from __future__ import annotations

import http.client
import json

import pytest

from kharness.result.model import Result
from kharness.runner import Run, RunOptions
from kharness.unexpected import HINT, InternalError, as_result, describe


def _raise_incomplete():
    raise http.client.IncompleteRead(b"x" * 10, 90)


@pytest.mark.parametrize("exc,line", [
    (http.client.IncompleteRead(b"x" * 10, 90), "IncompleteRead(10 bytes read, 90 more expected)"),
    (FileExistsError(17, "File exists", "/c"), "FileExistsError: [Errno 17] File exists: '/c'"),
    (RuntimeError(), "RuntimeError"),
    (ValueError("two\nlines"), "ValueError: two lines"),
])
def test_describe_is_one_line_naming_the_exception(exc, line):
    assert describe(exc) == line


def test_describe_caps_a_huge_message():
    assert len(describe(ValueError("x" * 10_000))) == 300


def test_internal_error_is_an_infrastructure_error_with_its_traceback():
    try:
        _raise_incomplete()
    except Exception as e:
        err = InternalError(e)
    assert err.kind == "infrastructure" and err.exit_code == 2
    assert str(err) == f"internal error: IncompleteRead(10 bytes read, 90 more expected) ({HINT})"
    assert "Traceback (most recent call last)" in err.traceback
    assert "_raise_incomplete" in err.traceback and "IncompleteRead" in err.traceback


def test_as_result_settles_a_fresh_result():
    r = Result("/m", "x86_64", "default")
    r.phase("build").status = "running"
    as_result(r, OSError("disk on fire"))
    d = r.to_dict()
    assert (d["status"], d["error"]["kind"], r.exit_code) == ("error", "infrastructure", 2)
    assert d["error"]["message"].startswith("internal error: OSError: disk on fire")
    assert "OSError: disk on fire" in d["traceback"]
    assert d["phases"][0]["status"] == "error"
    json.dumps(d)


def _run(tmp_path, monkeypatch, pipeline):
    monkeypatch.setattr(Run, "_pipeline", pipeline)
    return Run(RunOptions(module_dir=tmp_path)).execute()


def test_execute_turns_an_exception_in_a_phase_into_an_infrastructure_error(tmp_path, monkeypatch):
    def pipeline(self):
        self.result.phase("build").status = "pass"
        self.result.phase("image").status = "running"
        _raise_incomplete()

    r = _run(tmp_path, monkeypatch, pipeline)
    assert r.status == "error" and r.exit_code == 2
    assert r.error == {"kind": "infrastructure",
                       "message": f"internal error: IncompleteRead(10 bytes read, 90 more expected) ({HINT})"}
    assert "_raise_incomplete" in r.traceback
    # What ran is kept: the build passed, the phase that raised is the one in error.
    assert [p.status for p in r.phases[:3]] == ["pass", "error", "skipped"]
    assert r.phase("image").message.startswith("internal error: IncompleteRead")


def test_execute_leaves_keyboard_interrupt_alone(tmp_path, monkeypatch):
    def pipeline(self):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, monkeypatch, pipeline)


def test_execute_keeps_kharness_errors_without_a_traceback(tmp_path):
    r = Run(RunOptions(module_dir=tmp_path / "missing")).execute()
    assert r.status == "error" and r.error["kind"] == "usage" and r.traceback == ""
