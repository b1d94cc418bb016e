"""The CI outputs as the commands write them: annotations on stdout only on GitHub (or when asked),
the step summary appended, the code-quality file; a matrix speaks once for its failed cells."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kharness.cli import app, ci

PHASES = ["build", "image", "boot", "load", "check", "unload"]


def _result(module_dir: Path) -> dict:
    return {"status": "fail", "module_dir": str(module_dir), "target": "x86_64", "kernel_wanted": "6.1",
            "summary": "build: m.c:3:5: error: nope", "duration": 1.0,
            "phases": [{"name": n, "status": "fail" if n == "build" else "skipped", "duration": 0, "message": ""}
                       for n in PHASES],
            "build": {"diagnostics": [{"file": str(module_dir / "m.c"), "line": 3, "column": 5, "severity": "error",
                                       "message": "nope, 100%", "tool": "gcc"}]}}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    for k in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_WORKSPACE", "CI_PROJECT_DIR"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / "mod").mkdir()
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    return tmp_path


def test_annotations_follow_github_actions_unless_told(repo, monkeypatch, capsys):
    r = _result(repo / "mod")
    ci.run_outputs(r, repo / "mod", "auto", None, None)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ci.run_outputs(r, repo / "mod", "auto", None, None)
    assert capsys.readouterr().out == "::error file=mod/m.c,line=3,col=5,title=compile error::nope, 100%25\n"
    ci.run_outputs(r, repo / "mod", "none", None, None)
    assert capsys.readouterr().out == ""
    monkeypatch.delenv("GITHUB_ACTIONS")
    ci.run_outputs(r, repo / "mod", "github", None, None)
    assert capsys.readouterr().out.startswith("::error file=mod/m.c,")


def test_the_summary_is_appended_and_the_codequality_file_written(repo, capsys):
    summary = repo / "summary.md"
    summary.write_text("earlier step\n")
    ci.run_outputs(_result(repo / "mod"), repo / "mod", "none", str(summary), repo / "cq.json")
    text = summary.read_text()
    assert text.startswith("earlier step\n### kharness: **FAIL**")
    assert "`mod/m.c:3:5`" in text
    [issue] = json.loads((repo / "cq.json").read_text())
    assert issue["location"] == {"path": "mod/m.c", "lines": {"begin": 3}}
    assert capsys.readouterr().out == ""


def test_a_summary_that_cannot_be_written_is_a_warning_not_a_failure(repo, capsys):
    ci.run_outputs(_result(repo / "mod"), repo / "mod", "none", str(repo / "no" / "dir" / "s.md"), None)
    assert "cannot append the step summary" in capsys.readouterr().err


def test_the_matrix_annotates_each_failed_cell_once(repo, monkeypatch, capsys):
    out = repo / "report"
    (out / "cells" / "x86_64-6.1").mkdir(parents=True)
    (out / "cells" / "x86_64-6.1" / "result.json").write_text(json.dumps(_result(repo / "mod")))
    s = {"module_dir": "mod", "wall_seconds": 3, "counts": {"pass": 1, "fail": 1, "error": 1, "skipped": 0},
         "cells": [{"id": "x86_64-6.1", "target": "x86_64", "kernel": "6.1", "status": "fail", "duration": 2,
                    "summary": "build: nope", "files": {"result": "cells/x86_64-6.1/result.json"}},
                   {"id": "arm64-6.1", "target": "arm64", "kernel": "6.1", "status": "error", "duration": 1,
                    "summary": "kharness run exited 2: no QEMU", "files": {}},
                   {"id": "x86_64-6.12", "target": "x86_64", "kernel": "6.12", "status": "pass", "duration": 2,
                    "files": {}}]}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    ci.matrix_outputs(s, out, repo / "mod", "auto", str(repo / "s.md"), repo / "cq.json")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["::error file=mod/m.c,line=3,col=5,title=x86_64-6.1%3A compile error::nope, 100%25",
                     "::error title=arm64-6.1%3A kharness%3A infrastructure error::kharness run exited 2: no QEMU"]
    md = (repo / "s.md").read_text()
    assert "| target \\ kernel | 6.1 | 6.12 |" in md and "**Failed cells**" in md
    assert len(json.loads((repo / "cq.json").read_text())) == 2


def test_bad_values_exit_2_before_anything_runs(tmp_path):
    r = CliRunner()
    out = r.invoke(app, ["run", str(tmp_path), "--annotations", "maybe"])
    assert out.exit_code == 2 and "--annotations 'maybe'" in out.output
    out = r.invoke(app, ["run", str(tmp_path), "--codequality", str(tmp_path)])
    assert out.exit_code == 2 and "--codequality" in out.output and "is a directory" in out.output


def test_what_the_matrix_passes_its_cells_is_what_run_takes(tmp_path):
    out = CliRunner().invoke(app, ["run", str(tmp_path / "nowhere"), *ci.CELL_ARGS, "--list-programs"])
    assert out.exit_code == 2 and "does not exist" in out.output


def test_with_the_result_on_stdout_the_annotations_go_to_stderr(repo, capsys):
    ci.run_outputs(_result(repo / "mod"), repo / "mod", "github", None, None, Path("-"))
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("::error file=mod/m.c,")
