"""A result's problems (what annotations, the step summary and GitLab's code quality are written
from), kharness.toml's check lines, the Markdown summary and the code-quality issues."""

from __future__ import annotations

import json

from kharness.result import codequality as cq
from kharness.result.problems import problems
from kharness.result.stepsummary import cell, matrix_markdown, run_markdown
from kharness.result.tomllines import TomlLines

TOML = """\
# a comment
[module]
name = "m"

[load]
expect_dmesg = 'hello'

[[check]]
name = "first"
run = "true"

[[check]]   # no name: the kind's default
run = '''
[[check]] inside a multi-line string is no header
'''

[[check]]
name = "third"
run = "false"
"""


def _phases(**status):
    return [{"name": n, "status": status.get(n, "pass"), "duration": 0.5, "message": ""}
            for n in ("build", "image", "boot", "load", "check", "unload")]


def test_check_lines_are_found_and_a_header_in_a_string_is_not_one():
    lines = TomlLines(TOML)
    assert lines.check_lines == [8, 12, 17]
    assert lines.check(0, "first") == 8
    assert lines.check(1, "run true") == 12     # no name in the table: by position
    assert lines.check(2, "third") == 17
    assert lines.key("load", "expect_dmesg") == 6


def test_a_check_out_of_order_is_found_by_name_and_companions_by_the_programs_key():
    lines = TomlLines('programs = ["t"]\n' + TOML)
    assert lines.check(0, "third") == 18        # a Session's order: the name decides
    assert lines.check(3, "program t") == 1     # past the tables: a companion program's check


def test_when_the_scan_and_tomllib_disagree_no_line_is_given():
    text = 'x = """\n[[check]]\n"""\n[[check]]\nname = "a"\nrun = "true"\n'
    assert TomlLines(text).check(0, "a") is None


def test_problems_of_a_failed_build_point_at_the_diagnostics(tmp_path):
    r = {"status": "fail", "phases": _phases(build="fail"), "build": {"diagnostics": [
        {"file": str(tmp_path / "m.c"), "line": 17, "column": 16, "severity": "error", "message": "undeclared",
         "tool": "gcc"},
        {"file": str(tmp_path / "m.c"), "line": 3, "column": 1, "severity": "warning", "message": "unused", "tool": "gcc"},
        {"file": str(tmp_path / "m.c"), "line": 4, "column": 1, "severity": "note", "message": "here", "tool": "gcc"},
        {"file": None, "line": None, "column": None, "severity": "error", "message": "x undefined", "tool": "modpost"}]}}
    ps = problems(r, tmp_path)
    assert [(p.severity, p.title, p.line) for p in ps] == [
        ("error", "compile error", 17), ("error", "modpost error", None), ("warning", "compile warning", 3)]


def test_a_failed_check_points_at_its_kharness_toml_line(tmp_path):
    (tmp_path / "kharness.toml").write_text(TOML)
    r = {"status": "fail", "phases": _phases(check="fail"), "checks": [
        {"name": "first", "status": "pass"},
        {"name": "run true", "status": "pass"},
        {"name": "third", "status": "fail", "rc": 1, "expect_rc": 0, "message": "exit status 1, expected 0"}]}
    [p] = problems(r, tmp_path)
    assert (p.title, p.file, p.line, p.message) == ("check failed: third", str(tmp_path / "kharness.toml"), 17,
                                                     "exit status 1, expected 0")


def test_a_load_expectation_that_failed_points_at_its_key(tmp_path):
    (tmp_path / "kharness.toml").write_text(TOML)
    phases = _phases(load="fail")
    phases[3]["message"] = "expect_dmesg 'hello' did not match the load's kernel log"
    [p] = problems({"status": "fail", "phases": phases}, tmp_path)
    assert (p.title, p.line) == ("load failed", 6)


def test_a_finding_is_located_by_the_caller_and_its_taint_is_not_repeated(tmp_path):
    finding = {"kind": "null_deref", "summary": "BUG: kernel NULL pointer dereference", "phase": "load",
               "blocking": True, "module": "m", "report": "RIP: 0010:m_init+0x23/0x36 [m]"}
    r = {"status": "fail", "phases": _phases(load="fail"), "findings": [
        {"kind": "warning", "summary": "boot noise", "phase": "boot", "blocking": False},
        finding,
        {"kind": "taint", "summary": "kernel tainted: D", "phase": "load", "blocking": True}]}
    seen = []

    def locate(f):
        seen.append(f)
        return (str(tmp_path / "m.c"), 20)

    [p] = problems(r, tmp_path, locate)
    assert seen == [finding]
    assert (p.title, p.file, p.line) == ("kernel null_deref", str(tmp_path / "m.c"), 20)
    assert "in module m" in p.message and "load phase" in p.message
    # Without a location the finding is still a problem, just without a file.
    [p] = problems(r, tmp_path)
    assert p.file is None and p.line is None


def test_an_infrastructure_error_is_one_problem(tmp_path):
    r = {"status": "error", "error": {"kind": "infrastructure", "message": "no Debian mirror found"},
         "phases": _phases(build="skipped")}
    [p] = problems(r, tmp_path)
    assert (p.kind, p.title, p.message) == ("infrastructure", "kharness: infrastructure error", "no Debian mirror found")


def test_codequality_issues_have_what_gitlab_requires(tmp_path):
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "kharness.toml").write_text(TOML)
    r = {"status": "fail", "phases": _phases(build="fail", load="fail"), "build": {"diagnostics": [
        {"file": str(tmp_path / "mod" / "m.c"), "line": 17, "column": 16, "severity": "error", "message": "bad",
         "tool": "gcc"}]}, "findings": [{"kind": "oops", "summary": "Oops", "phase": "load", "blocking": True}]}
    issues = [cq.issue(p, tmp_path, tmp_path / "mod") for p in problems(r, tmp_path / "mod")]
    assert [(i["check_name"], i["severity"], i["location"]) for i in issues] == [
        ("kharness.build", "major", {"path": "mod/m.c", "lines": {"begin": 17}}),
        # No location of its own: GitLab wants one all the same; the module's kharness.toml.
        ("kharness.finding", "critical", {"path": "mod/kharness.toml", "lines": {"begin": 1}})]
    assert all(set(i) == {"description", "check_name", "fingerprint", "severity", "location"} for i in issues)
    again = [cq.issue(p, tmp_path, tmp_path / "mod") for p in problems(r, tmp_path / "mod")]
    assert [i["fingerprint"] for i in again] == [i["fingerprint"] for i in issues]
    assert len({i["fingerprint"] for i in issues}) == 2
    cq.write(tmp_path / "cq.json", issues)
    assert json.loads((tmp_path / "cq.json").read_text()) == issues


def test_markdown_cells_cannot_break_the_table_or_inject_html():
    assert cell("a | b\nc <script>&") == "a \\| b c &lt;script&gt;&amp;"
    assert len(cell("x" * 500)) == 200


def test_the_run_summary_has_the_status_phases_checks_findings_and_problems(tmp_path):
    r = {"status": "fail", "module_dir": "mod", "target": "x86_64", "kernel": {"release": "6.1.0-50-amd64"},
         "accelerator": "tcg", "duration": 5.6, "summary": "check: third failed", "phases": _phases(check="fail"),
         "checks": [{"name": "third", "status": "fail", "duration": 0.1, "message": "rc | 1"}],
         "findings": [{"kind": "warning", "summary": "WARNING: at m.c", "phase": "load", "blocking": True,
                       "module": "m"}]}
    md = run_markdown(r, problems(r, tmp_path), tmp_path)
    assert md.startswith("### kharness: **FAIL**: `mod` on x86_64 / 6.1.0-50-amd64 (5.6s, tcg)")
    assert "| check | fail | 0.5s |  |" in md
    assert "| third | fail | 0.1s | rc \\| 1 |" in md
    assert "| warning | load | yes | m | WARNING: at m.c |" in md
    assert "**Problems**" in md


def test_the_matrix_summary_has_the_grid_and_the_failed_cells(tmp_path):
    s = {"module_dir": "mod", "wall_seconds": 61, "counts": {"pass": 2, "fail": 1, "error": 0, "skipped": 1},
         "cells": [{"id": "x86_64-6.1", "target": "x86_64", "kernel": "6.1", "status": "pass", "duration": 9},
                   {"id": "x86_64-6.12", "target": "x86_64", "kernel": "6.12", "status": "fail", "duration": 12,
                    "summary": "load: oops", "change": "newly broken"},
                   {"id": "arm64-6.1", "target": "arm64", "kernel": "6.1", "status": "pass", "duration": 30},
                   {"id": "arm64-5.10", "target": "arm64", "kernel": "5.10", "status": "skipped", "duration": 0}]}
    failed = {"x86_64-6.12": problems({"status": "fail", "phases": _phases(load="fail"), "findings": [
        {"kind": "oops", "summary": "Oops", "phase": "load", "blocking": True}]}, tmp_path)}
    md = matrix_markdown(s, failed, tmp_path)
    assert "**FAIL**" in md and "2 passed, 1 failed, 0 error(s), 1 skipped" in md
    assert "| target \\ kernel | 5.10 | 6.1 | 6.12 |" in md
    assert "| x86_64 | – | pass 9s | **FAIL** 12s (newly broken) |" in md
    assert "| arm64 | **SKIPPED** 0s | pass 30s | – |" in md
    assert "| x86_64-6.12 | error |  | kernel oops | Oops (load phase) |" in md


def test_gcc_s_display_columns_become_character_columns(tmp_path):
    from kharness.result.problems import char_column

    f = tmp_path / "m.c"
    f.write_text("x\n\treturn kh;\n  a\tb\n")
    assert char_column(str(f), 2, 16) == 9      # the tab shows as 8 columns, is one character
    assert char_column(str(f), 2, 9) == 2
    assert char_column(str(f), 3, 9) == 5       # a tab after 3 characters reaches column 8
    assert char_column(str(f), 7, 4) == 4       # no such line: as gcc said
    assert char_column(str(tmp_path / "gone.c"), 1, 4) == 4
