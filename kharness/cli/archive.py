"""``kharness kernels`` and ``kharness targets``: what Debian's archive offers, and the boards."""

from __future__ import annotations

from typing import List

import typer

from kharness.cli.common import die, out
from kharness.errors import KharnessError


def kernels(
    target: List[str] = typer.Option([], "--target", "-t", help="Only these targets (repeatable)."),
    refresh: bool = typer.Option(False, "--refresh", help="Re-read Debian's indices now."),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON on stdout."),
) -> None:
    """List what Debian's archive offers: per target and suite, the kernel series and releases."""
    import json as _json
    import textwrap

    from rich.table import Table

    from kharness.debian.index import load_index
    from kharness.debian.suites import alias_names, archive_suites
    from kharness.kernels.resolve import available, offered, source_suites
    from kharness.targets import all_targets, get_target

    try:
        profiles = [get_target(t) for t in target] if target else list(all_targets().values())
        suites = archive_suites(refresh=refresh)
        aliases = {a: n for a, n in alias_names(suites).items() if a != n}
        rows = []   # (target, suite, series, release, default): default = what --kernel <series> picks
        for p in profiles:
            if p.kernel_source != "debian":
                for series in p.series:
                    for suite in source_suites(series):
                        rows.append((p.name, suite, series, f"built from linux-source-{series}", True))
                continue
            if refresh:
                for s in suites:
                    load_index(s.name, p.debian_arch, refresh=True)
            by_suite = offered(p)
            picks = {series: (available(p, series) or [(None, None)])[0]
                     for series in {x for by in by_suite.values() for x in by}}
            for s in suites:
                for series, releases in sorted(by_suite.get(s.name, {}).items(),
                                               key=lambda kv: tuple(map(int, kv[0].split(".")))):
                    for rel in releases:
                        rows.append((p.name, s.name, series, rel, picks[series] == (s.name, rel)))
        if json_out:
            out().print_json(_json.dumps({
                "suites": [{"suite": s.name, "alias": s.alias} for s in suites], "aliases": aliases,
                "kernels": [{"target": t, "suite": su, "series": se, "release": r, "default": d}
                            for t, su, se, r, d in rows]}))
            return
        t = Table(title="Kernels in Debian's archive (* = what --kernel <series> picks)", title_justify="left")
        for col in ("target", "suite", "series", "release"):
            t.add_column(col, no_wrap=True)
        last = None
        for name, suite, series, rel, default in rows:
            t.add_row(name if name != last else "", suite, series + ("*" if default else ""), rel)
            last = name
        console = out()
        console.print(t)
        legend = "--kernel also takes: " + ", ".join(f"{a} ({n})" for a, n in aliases.items()) + \
            ", newest (the highest series)"
        console.print("\n".join(textwrap.wrap(legend, 79, subsequent_indent="  ", break_on_hyphens=False)))
    except KharnessError as e:
        die(e)


def targets(
    json_out: bool = typer.Option(False, "--json", help="Print every profile as JSON on stdout."),
) -> None:
    """List the target boards and the kernel series each supports."""
    from kharness.targets import all_targets

    profiles = list(all_targets().values())
    if json_out:
        import json as _json

        typer.echo(_json.dumps([_profile_dict(p) for p in profiles], indent=2))
        return
    from rich import box
    from rich.table import Table

    # Four columns, so that an 80-column terminal shows it whole: the description names the QEMU
    # binary and machine; --json has every field.
    t = Table(title="Targets (profiles in images/)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              show_edge=False)
    t.add_column("target", no_wrap=True)
    t.add_column("debian arch", no_wrap=True)
    t.add_column("series")
    t.add_column("description", overflow="fold")
    for p in profiles:
        t.add_row(p.name, p.debian_arch, ", ".join(p.series), p.description)
    out().print(t)


def _profile_dict(p) -> dict:
    """A profile as JSON: its fields as loaded on this host (cross_compile is empty where the host
    builds natively), the file it came from as ``source``."""
    from dataclasses import asdict

    return dict(asdict(p), source=str(p.source))
