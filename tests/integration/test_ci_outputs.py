"""`kharness run` as a GitHub job sees it (GITHUB_ACTIONS=true, a step summary file, the checkout as
the workspace), on real modules: a compile error annotated at its file, line and column; an oops in
init annotated at the module's source line the kernel's report points to (resolved in the built .ko's
debug info); both in the step summary."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, KHARNESS, ROOT, RUN_LIMIT

pytestmark = pytest.mark.vm


def run_on_github(tmp_path: Path, module: Path) -> tuple[subprocess.CompletedProcess, str]:
    summary = tmp_path / "step-summary.md"
    summary.write_text("before\n")
    env = dict(os.environ, KHARNESS_PROGRESS="0", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
               GITHUB_WORKSPACE=str(ROOT))
    p = subprocess.run([*KHARNESS, "run", str(module)], capture_output=True, text=True, timeout=RUN_LIMIT,
                       cwd=ROOT, env=env)
    return p, summary.read_text()


def annotations(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith("::")]
    # At the end, after the verdict, never between other output.
    assert found and found == list(range(len(lines) - len(found), len(lines))), stdout
    return [lines[i] for i in found]


def test_a_compile_error_is_annotated_at_its_file_line_and_column(tmp_path):
    p, summary = run_on_github(tmp_path, FIXTURES / "build_error")
    assert p.returncode == 1, p.stderr
    source = (FIXTURES / "build_error" / "build_error.c").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "kharness_undeclared_identifier" in text)
    col = source[line - 1].index("kharness_undeclared_identifier") + 1
    first = annotations(p.stdout)[0]
    assert first.startswith(f"::error file=tests/fixtures/modules/build_error/build_error.c,line={line},col={col},"
                            f"title=compile error::"), first
    assert "undeclared" in first
    assert summary.startswith("before\n### kharness: **FAIL**")
    assert f"`tests/fixtures/modules/build_error/build_error.c:{line}:{col}`" in summary
    assert re.search(r"^\| build \| fail \|", summary, re.M)


def test_an_oops_in_init_is_annotated_at_the_faulting_source_line(tmp_path):
    p, summary = run_on_github(tmp_path, FIXTURES / "init_oops")
    assert p.returncode == 1, p.stderr
    source = (FIXTURES / "init_oops" / "init_oops.c").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if "*ptr = 42;" in text)
    [oops] = [a for a in annotations(p.stdout) if "title=kernel " in a]
    assert oops.startswith(f"::error file=tests/fixtures/modules/init_oops/init_oops.c,line={line},"
                           f"title=kernel null_deref::BUG: kernel NULL pointer dereference"), oops
    assert "| null_deref | load | yes | init_oops |" in summary
    assert f"`tests/fixtures/modules/init_oops/init_oops.c:{line}`" in summary


def test_annotations_none_prints_none(tmp_path):
    env = dict(os.environ, KHARNESS_PROGRESS="0", GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ROOT))
    env.pop("GITHUB_STEP_SUMMARY", None)
    p = subprocess.run([*KHARNESS, "run", str(FIXTURES / "build_error"), "--annotations", "none"],
                       capture_output=True, text=True, timeout=RUN_LIMIT, cwd=ROOT, env=env)
    assert p.returncode == 1 and "::error" not in p.stdout


def test_the_matrix_annotates_its_failed_cells_once_and_its_cells_do_not(tmp_path):
    summary = tmp_path / "step-summary.md"
    env = dict(os.environ, KHARNESS_PROGRESS="0", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
               GITHUB_WORKSPACE=str(ROOT))
    out = tmp_path / "report"
    p = subprocess.run([*KHARNESS, "matrix", str(FIXTURES / "build_error"), "--targets", "x86_64", "--kernels", "6.1",
                        "-o", str(out)], capture_output=True, text=True, timeout=RUN_LIMIT, cwd=ROOT, env=env)
    assert p.returncode == 1, p.stderr
    first = annotations(p.stdout)[0]
    assert first.startswith("::error file=tests/fixtures/modules/build_error/build_error.c,line=17,"), first
    assert "title=x86_64-6.1%3A compile error::" in first
    md = summary.read_text()
    assert md.count("### kharness") == 1 and "| x86_64 | **FAIL**" in md    # the matrix's, not the cell's
    assert "::error" not in (out / "cells" / "x86_64-6.1" / "output.log").read_text()
