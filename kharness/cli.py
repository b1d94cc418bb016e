"""The ``kharness`` command line (Typer).

Exit codes never lie: 0 the module passed, 1 the module failed, 2 usage or infrastructure error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from kharness import __version__, ui
from kharness.errors import KharnessError

out = Console(highlight=False)  # results go to stdout; progress and errors to stderr

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
    help="Build, boot, load and check Linux kernel modules on real Debian kernels in QEMU.\n\n"
         "Exit codes: 0 passed, 1 the module failed, 2 usage or infrastructure error.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _die(e: KharnessError) -> None:
    ui.console.print(f"[bold red]kharness: error:[/bold red] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(e.exit_code)


def _version(value: bool) -> None:
    if value:
        print(f"kharness {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    pass


@app.command()
def run(
    module_dir: Path = typer.Argument(..., help="Directory holding the module's sources (and optionally its "
                                               "Makefile/Kbuild and kharness.toml)."),
    target: str = typer.Option("x86_64", "--target", "-t", help="Target board (see `kharness targets`)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k",
                                         help="Kernel series (5.10, 6.1, 6.12, 7.2) or exact release "
                                              "(6.1.0-50-amd64). Default: 6.1, Debian's stable."),
    param: List[str] = typer.Option([], "--param", "-p", help="Module parameter KEY=VALUE (or MODULE.KEY=VALUE "
                                                             "when several modules are built); repeatable."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the structured result "
                                                                  "(schema kharness/result/v1) here."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1,
                                            help="Seconds each guest step (insmod, a check, rmmod) may take "
                                                 "before it counts as a hang. Default 60."),
    boot_timeout: float = typer.Option(300, "--boot-timeout", min=5, help="Seconds the guest may take to boot."),
    accel: str = typer.Option("auto", "--accel", help="auto (KVM if a probe boot works, else TCG), kvm or tcg."),
    keep: bool = typer.Option(False, "--keep", help="Keep the run directory (console log, initrd, QEMU "
                                                   "command line) and print where it is."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output, only the summary."),
) -> None:
    """Build MODULE_DIR against the target kernel, boot it in QEMU, insmod, run the checks, rmmod,
    and watch the kernel log throughout."""
    from kharness.result.writers import print_summary, write_json
    from kharness.runner import RunOptions, run as run_pipeline

    ui.set_quiet(quiet)
    opts = RunOptions(module_dir=module_dir, target=target, kernel=kernel, params=list(param),
                      timeout=timeout, boot_timeout=boot_timeout, accel=accel, keep=keep)
    try:
        result = run_pipeline(opts)
    except KeyboardInterrupt:
        ui.console.print("[red]interrupted[/red]")
        raise typer.Exit(130)
    if json_path is not None:
        write_json(result, json_path)
    if result.status == "error" and result.phase("build").status == "skipped":
        # A usage or infrastructure error before anything ran: one line says it all.
        ui.console.print(f"[bold red]kharness: error:[/bold red] {result.error['message']}", highlight=False, soft_wrap=True)
    else:
        print_summary(result, out)
    raise typer.Exit(result.exit_code)


@app.command()
def kernels(
    target: List[str] = typer.Option([], "--target", "-t", help="Only these targets (repeatable)."),
    refresh: bool = typer.Option(False, "--refresh", help="Re-read Debian's indices now."),
) -> None:
    """List the kernel releases available in Debian's archive, per target and series."""
    from kharness.kernels.index import load_index
    from kharness.kernels.resolve import SERIES_SUITES, available
    from kharness.targets import all_targets, get_target

    try:
        profiles = [get_target(t) for t in target] if target else list(all_targets().values())
        t = Table(title="Kernels in Debian's archive (first line of each series is the default)")
        for col in ("target", "series", "suite", "release"):
            t.add_column(col)
        for p in profiles:
            for series in p.series:
                if series not in SERIES_SUITES:
                    continue
                if refresh:
                    for suite in SERIES_SUITES[series]:
                        load_index(suite, p.debian_arch, refresh=True)
                pairs = available(p, series)
                if not pairs:
                    t.add_row(p.name, series, "-", "[dim]none[/dim]")
                for i, (suite, rel) in enumerate(pairs):
                    t.add_row(p.name if i == 0 else "", series if i == 0 else "", suite, rel)
        out.print(t)
    except KharnessError as e:
        _die(e)


@app.command()
def targets() -> None:
    """List the target boards and the kernel series each supports."""
    from kharness.targets import all_targets

    t = Table(title="Targets (profiles in images/)")
    for col in ("target", "qemu", "machine", "debian arch", "series", "description"):
        t.add_column(col)
    for p in all_targets().values():
        t.add_row(p.name, p.qemu, p.machine, p.debian_arch, ", ".join(p.series), p.description)
    out.print(t)


def main() -> None:
    try:
        app()
    except KharnessError as e:  # pragma: no cover - commands handle their own
        ui.console.print(f"[bold red]kharness: error:[/bold red] {e}")
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
