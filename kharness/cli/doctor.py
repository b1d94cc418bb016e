"""``kharness doctor``: what this host has and lacks, as a table or JSON, and ``--install``."""

from __future__ import annotations

import json
from typing import List

import typer

from kharness.cli.common import die, out
from kharness.errors import KharnessError

HELP = ("Check the host for what kharness needs: QEMU and the C compiler and static C library of each "
        "target, kmod, gpgv and Debian's archive keyring, what kernel builds and newer kernels' build "
        "environments use, a Debian mirror, a writable cache, KVM. What is missing is printed as one "
        "`apt-get install` line.\n\n"
        "Exit 0 when everything the default target (x86_64), or every --target, needs is there; 1 when "
        "something it needs is missing; 2 on bad input or when --install fails.")
_STYLE = {"ok": "green", "missing": "bold red", "optional": "yellow", "info": "cyan"}


def doctor(
    target: List[str] = typer.Option([], "--target", "-t", help="Only these targets (repeatable or comma-separated); "
                                                                "all of them are then required. Default: every "
                                                                "target, x86_64 required."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    install: bool = typer.Option(False, "--install", help="Run `apt-get update` and the `apt-get install` of "
                                                          "what is missing (with sudo when not root), then "
                                                          "check again."),
) -> None:
    """Check the host for what kharness needs (the full text is HELP)."""
    from kharness.cells import split
    from kharness.doctor import examine, install as apt_install

    try:
        report = examine(split(target) or None)
        if install and report.missing_packages:
            apt_install(report)
            report = examine(split(target) or None)
    except KharnessError as e:
        die(e)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    raise typer.Exit(0 if report.ok else 1)


def _users(users: tuple[str, ...]) -> str:
    """Who needs it, shortest first: what every run needs is needed by every target, what kernel
    builds need by ppc64 too (whose kernels kharness builds); its status says if it is required."""
    from kharness.hostdeps import EVERY_RUN, KERNEL_BUILDS

    for group in (EVERY_RUN, KERNEL_BUILDS):
        if group in users:
            return group
    return ", ".join(users) or "-"


def _print(report) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console = out()
    arch = f"Debian {report.debian_arch}" if report.debian_arch else "no Debian architecture known"
    t = Table(title=f"kharness doctor, host {report.machine} ({arch})", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    t.add_column("status", no_wrap=True)
    t.add_column("check", no_wrap=True)
    t.add_column("package", no_wrap=True)
    t.add_column("needed for", overflow="fold")
    for c in report.checks:
        t.add_row(f"[{_STYLE[c.status]}]{c.status}[/]", escape(c.what), c.package or "-", _users(c.users))
    console.print(t)
    for c in report.checks:
        if c.package is None:   # what no package provides: say what was found, or the fix
            console.print(f"{c.what}: {escape(c.detail)}")
    needed = ", ".join(report.required_for)
    if report.ok:
        console.print(f"[green]everything {escape(needed)} needs is here[/green]")
    else:
        lacking = [c.what for c in report.checks if c.required and not c.ok]
        console.print(f"[bold red]missing for {escape(needed)}:[/bold red] {escape(', '.join(lacking))}")
    if report.missing_packages:
        console.print("install what is missing (`kharness doctor --install` runs it):")
        console.print(escape(" ".join(report.apt_argv())), soft_wrap=True)
