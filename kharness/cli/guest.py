"""``kharness guest up|down|ls``: Debian guests in the background, reachable over SSH on loopback,
to test against as a board (``kharness run --remote``). The logic is kharness.guestctl."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import List, Optional

import typer

from kharness import ui
from kharness.cli.common import VERBOSE, die, out
from kharness.errors import KharnessError


def guest_up(
    target: str = typer.Argument(..., help="Target board (see `kharness targets`)."),
    guest: str = typer.Option("debian", "--guest", help="The guest system: debian."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k", help="Kernel series or release (default 6.1)."),
    suite: Optional[str] = typer.Option(None, "--guest-suite", help="Debian suite (default: the kernel's)."),
    packages: Optional[str] = typer.Option(None, "--guest-packages", help="Debian packages to add, comma-separated."),
    ssh: Optional[int] = typer.Option(None, "--ssh", min=1, max=65535, help="Loopback port for its sshd "
                                      "(default: a free one)."),
    authorized_key: List[Path] = typer.Option([], "--authorized-key", help="A public key file allowed to log in "
                                              "as root and as --user (repeatable); kharness's own key always is."),
    user: Optional[str] = typer.Option(None, "--user", help="Also make this login user, with passwordless sudo "
                                       "(installs sudo in the guest), and print the address with it: a board "
                                       "reached as pi@raspberrypi is."),
    name: Optional[str] = typer.Option(None, "--name", help="The guest's name (default TARGET-PID)."),
    lifetime: float = typer.Option(3600, "--for", min=1, help="Seconds until the guest is stopped, whatever "
                                   "happens (default one hour)."),
    boot_timeout: float = typer.Option(600, "--boot-timeout", min=5, help="Seconds the guest may take to boot."),
    accel: str = typer.Option("auto", "--accel", help="auto, kvm or tcg."),
    json_out: bool = typer.Option(False, "--json", help="Print how to reach it as JSON on stdout."),
    verbose: bool = VERBOSE,
) -> None:
    """Start a distro guest in the background and print how to reach it."""
    from kharness import guestctl
    from kharness.errors import UsageError

    ui.set_verbose(verbose)
    try:
        if guest != "debian":
            raise UsageError(f"`kharness guest up` starts distro guests, not {guest!r}", hint="use --guest debian")
        pkgs = tuple(p.strip() for p in (packages or "").split(",") if p.strip())
        info = guestctl.up(target, name=name, kernel=kernel, suite=suite, packages=pkgs, port=ssh,
                           authorized_keys=tuple(authorized_key), lifetime=lifetime, boot_timeout=boot_timeout,
                           accel=accel, user=user)
    except KharnessError as e:
        die(e)
    if json_out:
        typer.echo(json.dumps(dict(vars(info), address=info.address), indent=2))
        return
    o = out()
    o.print(f"[green]guest {info.name}[/green] ({info.target}, {info.release}, {info.suite}) is up until "
            f"{time.strftime('%H:%M:%S', time.localtime(info.deadline))}")
    o.print(f"  ssh:      ssh -p {info.port} -i {shlex.quote(info.identity)} {info.user}@127.0.0.1")
    o.print(f"  kharness: kharness run MODULE_DIR --remote {info.address} --identity {shlex.quote(info.identity)} "
            f"--accept-new-host-key")
    o.print(f"  host key: {info.host_key}")
    o.print(f"  stop:     kharness guest down {info.name}")


def guest_down(
    name: Optional[str] = typer.Argument(None, help="The guest to stop (see `kharness guest ls`)."),
    everything: bool = typer.Option(False, "--all", help="Stop every guest."),
    verbose: bool = VERBOSE,
) -> None:
    """Stop a guest started by `kharness guest up` (and remove its disk)."""
    from kharness import guestctl
    from kharness.errors import UsageError

    ui.set_verbose(verbose)
    try:
        if not everything and not name:
            raise UsageError("name the guest to stop, or give --all", hint="`kharness guest ls` lists them")
        stopped = guestctl.down(name, everything)
    except KharnessError as e:
        die(e)
    out().print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def guest_ls(
    json_out: bool = typer.Option(False, "--json", help="Print the guests as JSON on stdout."),
    verbose: bool = VERBOSE,
) -> None:
    """The guests running in the background."""
    from kharness import guestctl

    ui.set_verbose(verbose)
    guests = guestctl.listing()
    if json_out:
        typer.echo(json.dumps([dict(vars(g), address=g.address) for g in guests], indent=2))
        return
    from rich.table import Table

    t = Table(title="kharness guests")
    for col in ("name", "target", "kernel", "suite", "address", "stops in"):
        t.add_column(col)
    for g in guests:
        t.add_row(g.name, g.target, g.release, g.suite, g.address, f"{max(0, g.deadline - time.time()) / 60:.0f} min")
    out().print(t)
