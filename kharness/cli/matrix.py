"""``kharness matrix``: one module over targets x kernel series, with its reports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from kharness import ui
from kharness.cli import ci
from kharness.cli.common import VERBOSE, die, out
from kharness.errors import KharnessError, UsageError


def matrix(
    directory: Path = typer.Argument(..., help="The module directory."),
    kernels: Optional[str] = typer.Option(None, "--kernels", help="Kernel series, comma-separated (default: all)."),
    targets_: Optional[str] = typer.Option(None, "--targets", help="Targets, comma-separated (default: all)."),
    jobs: int = typer.Option(2, "-j", "--jobs", min=1, help="Cells run in parallel."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Start no new cell after a failure."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: run every N-th cell from the I-th."),
    output: Path = typer.Option(Path("kharness-matrix"), "--out", "-o", help="Directory for the reports."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A previous summary.json: newly broken cells first."),
    emit: Optional[str] = typer.Option(
        None, "--emit", help="Print CI configuration and exit: github-workflow (a complete GitHub workflow fanning the "
                             "cells out over jobs, each with the kharness action), github (the matrix JSON for "
                             "strategy.matrix), gitlab (a GitLab CI job with parallel:matrix)."),
    action_ref: str = typer.Option("", "--action", help="With --emit github-workflow: the kharness action to use "
                                                       "(OWNER/REPO@REF of your kharness; default: "
                                                       "kharness/kharness@main)."),
    timeout: Optional[float] = typer.Option(None, help="Per guest step timeout (seconds), for every cell."),
    cell_timeout: Optional[float] = typer.Option(
        None, "--cell-timeout", min=1,
        help="Seconds one cell (its whole `kharness run`: downloads, builds, boot, steps) may take before it "
             "is killed and reported as an infrastructure error. Default: derived from --timeout, with an "
             "hour for building a kernel."),
    annotations: str = ci.ANNOTATIONS,
    step_summary: Optional[str] = ci.STEP_SUMMARY,
    codequality: Optional[Path] = ci.CODEQUALITY,
    ktap_path: Optional[Path] = typer.Option(None, "--ktap", help="Also write the matrix as KTAP version 1 "
                                                                  "here (a test per cell, its run nested)."),
    kcidb_path: Optional[Path] = typer.Option(None, "--kcidb", help="Also write the matrix as KernelCI KCIDB "
                                                                    "data here (a build per cell)."),
    verbose: bool = VERBOSE,
) -> None:
    """Run a module over targets x kernel series: a live view, a grid, summary.json, junit.xml and a
    self-contained index.html (each cell linked to its result, console and dmesg logs).

    Exit codes: 0 every cell passed, 1 a module failure in some cell, 2 only infrastructure errors
    (or bad usage)."""
    import json
    import time

    from rich.markup import escape

    from kharness.cli.interchange import check_outputs, write_matrix
    from kharness.matrix import emit as emitters
    from kharness.matrix.execute import cell_deadline, run_all
    from kharness.matrix.plan import plan
    from kharness.matrix.report import REPORT_FILES, grid, write_all
    from kharness.outputs import prepare_output_dir
    from kharness.targets import all_targets

    ui.set_verbose(verbose)
    try:
        if not directory.is_dir():
            raise UsageError(f"module directory {directory} does not exist")
        cells = plan(all_targets(), targets_, kernels, shard)
        if emit is not None:
            sys.stdout.write(emitters.emit(emit, cells, str(directory), action_ref))
            return
        ci.check_options(annotations, codequality)
        base = None
        if baseline is not None:
            try:
                base = json.loads(baseline.read_text())
            except (OSError, ValueError) as e:
                raise UsageError(f"--baseline {baseline}: cannot read it as a matrix summary ({e})") from None
        prepare_output_dir(output, "--out", REPORT_FILES)
        check_outputs(ktap_path, kcidb_path)
        extra = (["--timeout", f"{timeout:g}"] if timeout else []) + ci.CELL_ARGS
        t = time.monotonic()
        results = run_all(directory.resolve(), cells, output, jobs, fail_fast, extra,
                          cell_timeout or cell_deadline(timeout))
        s = write_all(output, str(directory), results, time.monotonic() - t, base)
        if ktap_path is not None or kcidb_path is not None:
            write_matrix(output, directory, results, ktap_path, kcidb_path)
    except KharnessError as e:
        die(e)
    console = out()
    changes = {c["id"]: c["change"] for c in s["cells"]}
    console.print(grid(results, changes))
    broken = [c for c in s["cells"] if c["change"] == "newly broken"]
    for c in broken:
        console.print(f"[bold red]newly broken[/bold red] {c['id']}: {escape(c['summary'])}")
    console.print(f"{s['counts']['pass']} passed, {s['counts']['fail']} failed, {s['counts']['error']} error(s), "
                  f"{s['counts']['skipped']} skipped in {s['wall_seconds']:.0f}s; report: {output / 'index.html'}")
    ci.matrix_outputs(s, output, directory, annotations, step_summary, codequality)
    if s["counts"]["fail"]:
        raise typer.Exit(1)
    if s["counts"]["error"]:
        raise typer.Exit(2)
