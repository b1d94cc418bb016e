"""``kharness cache ls|verify|clean``: the content-addressed cache under ~/.cache/kharness."""

from __future__ import annotations

from typing import List, Optional

import typer

from kharness import ui
from kharness.cli.common import VERBOSE, die, out
from kharness.errors import UsageError


def cache_ls(
    json_out: bool = typer.Option(False, "--json", help="Print the entries as JSON on stdout."),
    verbose: bool = VERBOSE,
) -> None:
    """What the cache holds, per kind, with sizes."""
    ui.set_verbose(verbose)
    from kharness.cachectl import abandoned_staging, cache_entries
    from kharness.paths import cache_dir

    if json_out:
        import json

        entries = [{"kind": kind, "entry": name, "bytes": size} for kind, name, size in cache_entries()]
        typer.echo(json.dumps({"cache": str(cache_dir()), "entries": entries,
                               "total_bytes": sum(e["bytes"] for e in entries),
                               "abandoned_staging": [str(p) for p in abandoned_staging()]}, indent=2))
        return
    from rich.table import Table

    t = Table(title="kharness cache")
    for col in ("kind", "entry", "size"):
        t.add_column(col)
    total = 0
    for kind, name, size in cache_entries():
        total += size
        t.add_row(kind, name, f"{size / 1e6:.1f} MB")
    stale = abandoned_staging()
    for tmp in stale:
        t.add_row(tmp.parent.name, f"[yellow]{tmp.name} (left by a killed run)[/yellow]", "")
    console = out()
    console.print(t)
    console.print(f"total {total / 1e9:.2f} GB" + (f"; `kharness cache clean` removes {len(stale)} abandoned "
                                                    f"staging director{'y' if len(stale) == 1 else 'ies'}" if stale else ""))


def cache_verify(
    kind: List[str] = typer.Argument(None, help="Only these kinds (kernels, headers, images, debs, ...). Default: all."),
    fix: bool = typer.Option(False, "--fix", help="Discard what does not verify (made again when next needed)."),
    verbose: bool = VERBOSE,
) -> None:
    """Check every cached file against the SHA256 recorded when it was made (exit 1 if any differs)."""
    ui.set_verbose(verbose)
    from kharness.cachectl import verify
    from kharness.paths import cache_dir

    known = sorted(p.name for p in cache_dir().iterdir() if p.is_dir()) if cache_dir().is_dir() else []
    unknown = [k for k in (kind or []) if k not in known]
    if unknown:
        die(UsageError(f"no cache kind {', '.join(unknown)}", hint=f"kinds here: {', '.join(known) or 'none'}"))
    with ui.step("verifying the cache"):
        bad = verify(kind or None, fix)
    console = out()
    for k, name, why in bad:
        console.print(f"[red]{k}/{name}[/red]: {why}" + (" [dim](discarded)[/dim]" if fix else ""))
    console.print(f"{len(bad)} damaged entr{'y' if len(bad) == 1 else 'ies'}" if bad else "every sealed entry verifies")
    raise typer.Exit(1 if bad and not fix else 0)


def cache_clean(
    kind: List[str] = typer.Argument(None, help="Only these kinds (debs, kernels, headers, images, builds, "
                                                "sysroots, kernel-builds, index, ...). Default: all."),
    older_than: Optional[float] = typer.Option(None, "--older-than", help="Only entries unused for this many days."),
    verbose: bool = VERBOSE,
) -> None:
    """Remove cache entries (they are rebuilt or downloaded again when needed)."""
    ui.set_verbose(verbose)
    from kharness.cachectl import clean

    n, size = clean(kind or None, older_than)
    out().print(f"removed {n} entries, {size / 1e6:.1f} MB")
