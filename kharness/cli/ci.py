"""What `kharness run` and `kharness matrix` tell a CI system besides their own reports: GitHub
annotations (workflow commands on stdout, after the run's own output, never interleaved with its
progress), a Markdown step summary, GitLab's code-quality report. All three are written from the
same list of problems (kharness.result.problems); a kernel finding is placed on the module's
source line when the built .ko's debug info says where (kharness.build.sourceline).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from kharness.errors import UsageError

ANNOTATIONS = typer.Option(
    "auto", "--annotations",
    help="github: print GitHub Actions annotations (::error file=,line=::) for compile errors, kernel findings "
         "(at the module's source line when its debug info tells) and failed checks (at their kharness.toml "
         "line), after the run. auto (the default): github when GITHUB_ACTIONS=true. none: never.")
STEP_SUMMARY = typer.Option(
    None, "--step-summary", envvar="GITHUB_STEP_SUMMARY", show_envvar=False,
    help="Append a Markdown summary (phases, checks, findings; a matrix's grid) to this file. Default: "
         "$GITHUB_STEP_SUMMARY when set; '' for none.")
CODEQUALITY = typer.Option(
    None, "--codequality",
    help="Write GitLab's code-quality report (a JSON array of issues with path and line) here.")
# What `kharness matrix` passes to each cell's `kharness run`: the matrix speaks for all its
# cells once, at its end, rather than each cell into its own log.
CELL_ARGS = ["--annotations", "none", "--step-summary", ""]


def github_wanted(mode: str) -> bool:
    if mode not in ("auto", "github", "none"):
        raise UsageError(f"--annotations {mode!r}: use auto, github or none")
    return mode == "github" or (mode == "auto" and os.environ.get("GITHUB_ACTIONS") == "true")


def _locator(result: dict, module_dir: Path):
    from kharness.build.sourceline import locate_finding
    from kharness.errors import KharnessError
    from kharness.targets import get_target

    try:
        prefix = get_target(result.get("target") or "").cross_prefix
    except KharnessError:
        return None

    def locate(finding: dict):
        where = locate_finding(finding, result, module_dir, prefix)
        return (where.file, where.line) if where else None
    return locate


def _problems(result: dict, module_dir: Path):
    from kharness.result.problems import problems

    return problems(result, module_dir, _locator(result, module_dir))


def _emit(lines: list[str], stdout_taken: bool = False) -> None:
    """The commands on stdout, or on stderr when stdout carries the result (``--json -``): GitHub
    reads workflow commands from both."""
    stream = sys.stderr if stdout_taken else sys.stdout
    sys.stdout.flush()
    for line in lines:
        stream.write(line + "\n")
    stream.flush()


def _append_summary(path: str, markdown: str) -> None:
    from kharness.result.stepsummary import append

    try:
        append(Path(path), markdown)
    except OSError as e:   # the run's verdict stands; the summary is a courtesy
        print(f"kharness: cannot append the step summary to {path}: {e.strerror or e}", file=sys.stderr)


def run_outputs(result: dict, module_dir: Path, annotations: str, step_summary: Optional[str],
                codequality: Optional[Path], json_path: object = None) -> None:
    """The CI outputs of one `kharness run` (``result``: its result document; ``json_path``: its
    --json, which may be ``-``, stdout)."""
    from kharness.result import annotations as gh
    from kharness.result import codequality as cq
    from kharness.result.stepsummary import run_markdown

    github = github_wanted(annotations)
    if not (github or step_summary or codequality):
        return
    module_dir = module_dir.resolve()
    items = _problems(result, module_dir)
    root = gh.repo_root()
    if codequality is not None:
        cq.write(codequality, [cq.issue(p, root, module_dir) for p in items])
    if step_summary:
        _append_summary(step_summary, run_markdown(result, items, root))
    if github:
        _emit(gh.commands([("", p) for p in items], root), str(json_path) == "-")


def matrix_outputs(summary: dict, out: Path, module_dir: Path, annotations: str, step_summary: Optional[str],
                   codequality: Optional[Path]) -> None:
    """The same for a matrix: every failed cell's problems, prefixed with the cell's id, and the grid."""
    from kharness.result import annotations as gh
    from kharness.result import codequality as cq
    from kharness.result.stepsummary import matrix_markdown

    github = github_wanted(annotations)
    if not (github or step_summary or codequality):
        return
    module_dir = module_dir.resolve()
    failed = {}
    for c in summary.get("cells") or ():
        if c.get("status") not in ("fail", "error"):
            continue
        try:
            r = json.loads((out / c["files"]["result"]).read_text())
        except (KeyError, OSError, ValueError):   # a cell that wrote no result: its summary says why
            r = {"status": "error", "error": {"kind": "infrastructure", "message": c.get("summary", "")}}
        failed[c["id"]] = _problems(r, module_dir)
    root = gh.repo_root()
    if codequality is not None:
        cq.write(codequality, [cq.issue(p, root, module_dir, cid) for cid, ps in failed.items() for p in ps])
    if step_summary:
        _append_summary(step_summary, matrix_markdown(summary, failed, root))
    if github:
        _emit(gh.commands([(cid, p) for cid, ps in failed.items() for p in ps], root))


def check_options(annotations: str, codequality: Optional[Path]) -> None:
    """Bad values found before anything runs (exit 2)."""
    from kharness.outputs import check_output_file

    github_wanted(annotations)
    if codequality is not None:
        check_output_file(codequality, "--codequality")
