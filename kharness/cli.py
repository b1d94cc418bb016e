"""The ``kharness`` command line (Typer).

Exit codes never lie: 0 the module passed, 1 the module failed, 2 usage or infrastructure error.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from kharness import __version__, ui
from kharness.errors import KharnessError, UsageError
from kharness.kernels.debug import CHECKERS, parse_checkers

out = Console(highlight=False, soft_wrap=True)  # results to stdout (paths never wrapped); progress, errors to stderr

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
    help="Build, boot, load and check Linux kernel modules on real Debian kernels in QEMU.\n\n"
         "Exit codes: 0 passed, 1 the module failed, 2 usage or infrastructure error.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


DEBUG_HELP = ("Boot a debug kernel kharness builds from Debian's linux-source with these checkers "
              "(comma-separated, or all): " + "; ".join(f"{k}: {v}" for k, v in CHECKERS.items()) +
              ". Built once (minutes), then cached.")


VERBOSE = typer.Option(False, "--verbose", help="On an internal error, print its traceback (it is always in "
                                                  "the result JSON).")


def _error_line(message: str) -> None:
    # escape: messages quote TOML sections ("[gpio]", "[module.params]") that rich would eat as markup
    ui.console.print(f"[bold red]kharness: error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def _die(e: KharnessError) -> None:
    _error_line(str(e))
    raise typer.Exit(e.exit_code)


def _traceback(text: str) -> None:
    """Under --verbose, an internal error's traceback (plain: rich would wrap and restyle it)."""
    if text and ui.verbose():
        sys.stderr.write(text if text.endswith("\n") else text + "\n")


def _version(value: bool) -> None:
    if value:
        print(f"kharness {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help="On an internal error, print its traceback "
                                                         "(every command also takes --verbose)."),
) -> None:
    ui.set_verbose(verbose)


@app.command()
def run(
    module_dir: Path = typer.Argument(..., help="Directory holding the module's sources (and optionally its "
                                               "Makefile/Kbuild and kharness.toml)."),
    target: str = typer.Option("x86_64", "--target", "-t", help="Target board (see `kharness targets`)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k",
                                         help="Kernel series (5.10, 6.1, 6.12, 7.2) or exact release "
                                              "(6.1.0-50-amd64), or 6.1-debug for a debug kernel with every "
                                              "checker (see --debug). Default: 6.1, Debian's stable."),
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
    kernel_tree: Optional[Path] = typer.Option(None, "--kernel-tree", help="Build the kernel from this source "
                                               "tree (tinyconfig + the target's fragment + --kernel-config) "
                                               "and test against it."),
    kernel_config: List[Path] = typer.Option([], "--kernel-config", help="Config fragment for --kernel-tree "
                                                                        "(repeatable)."),
    cold: bool = typer.Option(False, "--cold", help="Boot the guest instead of restoring its ready snapshot."),
    debug: Optional[str] = typer.Option(None, "--debug", help=DEBUG_HELP),
    verbose: bool = VERBOSE,
) -> None:
    """Build MODULE_DIR against the target kernel, boot it in QEMU, insmod, run the checks, rmmod,
    and watch the kernel log throughout."""
    from kharness.outputs import check_output_file
    from kharness.result.model import Result
    from kharness.result.writers import print_summary, write_json
    from kharness.runner import RunOptions, run as run_pipeline
    from kharness.unexpected import as_result

    ui.set_quiet(quiet)
    ui.set_verbose(verbose)
    if json_path is not None:
        try:
            check_output_file(json_path, "--json")
        except KharnessError as e:
            _die(e)
    opts = RunOptions(module_dir=module_dir, target=target, kernel=kernel, params=list(param),
                      timeout=timeout, boot_timeout=boot_timeout, accel=accel, keep=keep,
                      kernel_tree=kernel_tree, kernel_config=list(kernel_config), cold=cold, debug=debug or ())
    try:
        result = run_pipeline(opts)
    except KeyboardInterrupt:
        ui.console.print("[red]interrupted[/red]")
        raise typer.Exit(130)
    except Exception as e:   # before the runner had a result to fill (it catches what its phases raise)
        result = as_result(Result(module_dir=str(module_dir), target=target, kernel_wanted=kernel or "default"), e)
    if json_path is not None:
        write_json(result, json_path)
    if result.status == "error" and result.phase("build").status == "skipped":
        # A usage or infrastructure error before anything ran: one line says it all.
        _error_line(result.error["message"])
    else:
        print_summary(result, out)
        if result.traceback:   # the summary went to stdout; the line CI greps goes to stderr
            _error_line(result.error["message"])
    _traceback(result.traceback)
    raise typer.Exit(result.exit_code)


@app.command()
def watch(
    module_dir: Path = typer.Argument(..., help="The module directory to watch."),
    target: str = typer.Option("x86_64", "--target", "-t"),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k"),
    param: List[str] = typer.Option([], "--param", "-p"),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1),
    accel: str = typer.Option("auto", "--accel"),
    cold: bool = typer.Option(False, "--cold", help="Boot every run instead of restoring the snapshot."),
    runs: Optional[int] = typer.Option(None, "--runs", min=1, help="Stop after this many runs (default: until Ctrl-C)."),
    debug: Optional[str] = typer.Option(None, "--debug", help="Debug kernel checkers (as for run)."),
    verbose: bool = VERBOSE,
) -> None:
    """Rebuild and rerun on every save: each run restores the ready snapshot, so a fresh kernel
    checks every edit; the verdict is on screen about a second after the build."""
    from kharness.result.writers import print_summary
    from kharness.runner import RunOptions
    from kharness.runner import run as run_pipeline
    from kharness.watch import watch as watch_loop

    ui.set_verbose(verbose)
    if not module_dir.is_dir():
        _die(UsageError(f"module directory {module_dir} does not exist"))
    try:
        checkers = parse_checkers(debug)
    except KharnessError as e:
        _die(e)
    opts = RunOptions(module_dir=module_dir, target=target, kernel=kernel, params=list(param),
                      timeout=timeout, accel=accel, cold=cold, debug=checkers)
    last = {"code": 0}

    def report(result, seconds: float) -> None:
        print_summary(result, out)
        _traceback(result.traceback)
        out.print(f"[dim]{time.strftime('%H:%M:%S')} run took {seconds:.1f}s "
                  f"({result.boot_mode or 'no boot'}); watching {module_dir} (Ctrl-C to stop)[/dim]")
        last["code"] = result.exit_code

    try:
        watch_loop(module_dir, lambda: run_pipeline(opts), report, max_runs=runs)
    except KeyboardInterrupt:
        raise typer.Exit(0)
    raise typer.Exit(last["code"])


@app.command()
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
            out.print_json(_json.dumps({
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
        out.print(t)
        legend = "--kernel also takes: " + ", ".join(f"{a} ({n})" for a, n in aliases.items()) + \
            ", newest (the highest series)"
        out.print("\n".join(textwrap.wrap(legend, 79, subsequent_indent="  ", break_on_hyphens=False)))
    except KharnessError as e:
        _die(e)


@app.command()
def targets() -> None:
    """List the target boards and the kernel series each supports."""
    from rich.table import Table

    from kharness.targets import all_targets

    t = Table(title="Targets (profiles in images/)")
    for col in ("target", "qemu", "machine", "debian arch", "series", "description"):
        t.add_column(col)
    for p in all_targets().values():
        t.add_row(p.name, p.qemu, p.machine, p.debian_arch, ", ".join(p.series), p.description)
    out.print(t)


def _templates_help() -> str:
    from kharness.templates import TEMPLATES
    return "\n\n".join(f"[bold]{t.name}[/bold]: {t.summary}" for t in TEMPLATES.values())


@app.command(help="Create a module directory from a template: C source, kbuild Makefile, kharness.toml "
                  "with checks that prove it works, README.\n\nTemplates:\n\n" + _templates_help())
def new(
    name: str = typer.Argument(..., help="Module name: a lower-case C identifier."),
    template: str = typer.Option("hello", "--template", "-t", help="Template (listed above)."),
    directory: Optional[Path] = typer.Option(None, "--dir", "-d", help="Where to create it (default: ./NAME)."),
    author: str = typer.Option("Your Name <you@example.com>", help="MODULE_AUTHOR."),
    description: str = typer.Option("", help="MODULE_DESCRIPTION (default: the template's summary)."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty directory."),
    verbose: bool = VERBOSE,
) -> None:
    from kharness.templates import TEMPLATES, create
    ui.set_verbose(verbose)
    try:
        desc = description or (TEMPLATES[template].summary if template in TEMPLATES else "")
        d = directory or Path(name)
        files = create(template, name, d, author=author, description=desc[:1].upper() + desc[1:], force=force)
    except KharnessError as e:
        _die(e)
    out.print(f"created {d}/ from the {template} template: " + ", ".join(f.name for f in files))
    out.print(f"next: kharness run {d}")


@app.command(help="Write (or print with --stdout) the kbuild Makefile kharness would generate for DIR: "
                  "its sources, single or multi-file modules, several modules, ccflags and include "
                  "directories from kharness.toml. `kharness run` uses the same generator.\n\n"
                  "To start a module from a template instead (its Makefile included): "
                  "`kharness new NAME --template T`, with T one of:\n\n" + _templates_help())
def makefile(
    directory: Path = typer.Argument(..., help="The module directory."),
    stdout: bool = typer.Option(False, "--stdout", help="Print it instead of writing DIR/Makefile."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing Makefile."),
    verbose: bool = VERBOSE,
) -> None:
    from kharness.build.makefile import plan_build, render_makefile
    from kharness.modconfig import load_config
    ui.set_verbose(verbose)
    try:
        if not directory.is_dir():
            raise UsageError(f"module directory {directory} does not exist")
        config = load_config(directory)
        plan = plan_build(directory, name=config.name, sources=list(config.sources) or None,
                          ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
        if not plan.generated:
            if not (stdout or force):
                raise UsageError(f"{directory} has its own build rules ({plan.own_rules.name}); kharness uses them",
                                 hint="--stdout prints what kharness would generate instead; --force replaces them")
            # What kharness would generate from the sources alone.
            plan = plan_build(directory, name=config.name, sources=sorted(p.name for p in directory.glob("*.c")),
                              ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
        text = render_makefile(plan)
        if stdout:
            sys.stdout.write(text)
            return
        target = directory / "Makefile"
        if target.exists() and not force:
            raise UsageError(f"{target} exists", hint="--force to overwrite, or --stdout to print")
        target.write_text(text)
    except KharnessError as e:
        _die(e)
    out.print(f"wrote {target} (" + ", ".join(m.name + (f" from {len(m.objs)} files" if m.objs else "")
                                             for m in plan.modules) + ")")


@app.command()
def matrix(
    directory: Path = typer.Argument(..., help="The module directory."),
    kernels: Optional[str] = typer.Option(None, "--kernels", help="Kernel series, comma-separated (default: all)."),
    targets_: Optional[str] = typer.Option(None, "--targets", help="Targets, comma-separated (default: all)."),
    jobs: int = typer.Option(2, "-j", "--jobs", min=1, help="Cells run in parallel."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Start no new cell after a failure."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: run every N-th cell from the I-th."),
    output: Path = typer.Option(Path("kharness-matrix"), "--out", "-o", help="Directory for the reports."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A previous summary.json: newly broken cells first."),
    emit: Optional[str] = typer.Option(None, "--emit", help="Print the matrix as CI config (github, gitlab) and exit."),
    timeout: Optional[float] = typer.Option(None, help="Per guest step timeout (seconds), for every cell."),
    cell_timeout: Optional[float] = typer.Option(
        None, "--cell-timeout", min=1,
        help="Seconds one cell (its whole `kharness run`: downloads, builds, boot, steps) may take before it "
             "is killed and reported as an infrastructure error. Default: derived from --timeout, with an "
             "hour for building a kernel."),
    verbose: bool = VERBOSE,
) -> None:
    """Run a module over targets x kernel series: a live view, a grid, summary.json, junit.xml and a
    self-contained index.html (each cell linked to its result, console and dmesg logs).

    Exit codes: 0 every cell passed, 1 a module failure in some cell, 2 only infrastructure errors
    (or bad usage)."""
    import json
    import time

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
            if emit not in ("github", "gitlab"):
                raise UsageError(f"--emit {emit!r}: use github or gitlab")
            sys.stdout.write((emitters.github(cells) + "\n") if emit == "github" else emitters.gitlab(cells, str(directory)))
            return
        base = None
        if baseline is not None:
            try:
                base = json.loads(baseline.read_text())
            except (OSError, ValueError) as e:
                raise UsageError(f"--baseline {baseline}: cannot read it as a matrix summary ({e})") from None
        prepare_output_dir(output, "--out", REPORT_FILES)
        extra = ["--timeout", f"{timeout:g}"] if timeout else []
        t = time.monotonic()
        results = run_all(directory.resolve(), cells, output, jobs, fail_fast, extra,
                          cell_timeout or cell_deadline(timeout))
        s = write_all(output, str(directory), results, time.monotonic() - t, base)
    except KharnessError as e:
        _die(e)
    changes = {c["id"]: c["change"] for c in s["cells"]}
    out.print(grid(results, changes))
    broken = [c for c in s["cells"] if c["change"] == "newly broken"]
    for c in broken:
        out.print(f"[bold red]newly broken[/bold red] {c['id']}: {escape(c['summary'])}")
    out.print(f"{s['counts']['pass']} passed, {s['counts']['fail']} failed, {s['counts']['error']} error(s), "
              f"{s['counts']['skipped']} skipped in {s['wall_seconds']:.0f}s; report: {output / 'index.html'}")
    if s["counts"]["fail"]:
        raise typer.Exit(1)
    if s["counts"]["error"]:
        raise typer.Exit(2)


kernel_app = typer.Typer(help="Kernels kharness builds itself (targets Debian has no kernel for, your own tree).",
                         no_args_is_help=True)
image_app = typer.Typer(help="Guest images (kernel + initramfs + device tree), built and cached.", no_args_is_help=True)
cache_app = typer.Typer(help="The content-addressed cache under ~/.cache/kharness.", no_args_is_help=True)
app.add_typer(kernel_app, name="kernel")
app.add_typer(image_app, name="image")
app.add_typer(cache_app, name="cache")


@kernel_app.command("build")
def kernel_build(
    target: str = typer.Option(..., "--target", "-t", help="Target whose profile gives ARCH, cross compiler "
                                                          "and config fragment (e.g. ppc64)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k", help="Series of Debian's linux-source-* (e.g. 6.1) "
                                                                      "or an alias of one (stable)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Your own kernel tree instead of Debian's source."),
    config: List[Path] = typer.Option([], "--config", help="Extra config fragment (repeatable)."),
    debug: Optional[str] = typer.Option(None, "--debug", help=DEBUG_HELP),
    verbose: bool = VERBOSE,
) -> None:
    """Build (or reuse) a kernel from source: tinyconfig + the target's fragment + yours (+ the
    debug checkers' fragments). `kharness run --debug ...` builds the same kernel by itself."""
    from kharness.kernels.source import boot_image
    from kharness.plan import build_source, plan_guest

    ui.set_verbose(verbose)
    try:
        guest = plan_guest(target, kernel, debug, source, config)
        prof, checkers = guest.profile, guest.debug
        if source is None and prof.kernel_source != "debian-source" and not config and not checkers:
            raise UsageError(f"target {target} uses Debian's packaged kernels",
                             hint="give --debug CHECKERS for a debug kernel, or --source DIR (and --config "
                                  "fragments) to build your own tree")
        if source is not None:
            if not prof.config_fragment and not config:
                raise UsageError(f"target {target} has no config fragment of its own",
                                 hint="give --config fragments that make the kernel boot on it")
        elif config:
            raise UsageError("--config applies to --source", hint="give --source DIR too")
        _, b = build_source(prof, guest.kernel, guest.kernel_tree, guest.kernel_config, checkers)
    except KharnessError as e:
        _die(e)
    took = f" (built in {b.build_seconds:.0f}s)" if b.build_seconds else ""
    what = f"debug kernel ({', '.join(checkers)})" if checkers else "kernel"
    out.print(f"{what} {b.release} for {target}: {b.out / (b.boot or boot_image(prof))}{took}")


@image_app.command("build")
def image_build(
    target: str = typer.Option("x86_64", "--target", "-t"),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k", help="Series or exact release."),
    snapshot: bool = typer.Option(False, "--snapshot", help="Also save the ready snapshot `kharness run` restores."),
    accel: str = typer.Option("auto", "--accel", help="auto, kvm or tcg (a snapshot is per accelerator)."),
    boot_timeout: float = typer.Option(300, "--boot-timeout", min=5),
    debug: Optional[str] = typer.Option(None, "--debug", help="Debug kernel checkers (as for run)."),
    verbose: bool = VERBOSE,
) -> None:
    """Build (or reuse) the guest image for a target and kernel and print where it is."""
    from kharness.agent_client import HEALTH_CMD
    from kharness.plan import plan_guest
    from kharness.targets import get_target
    from kharness.vm import snapshot as snapshots
    from kharness.vm.accel import choose_accel
    from kharness.vm.qemu import BootSpec

    ui.set_verbose(verbose)
    snap = None
    try:
        prof = get_target(target)
        if snapshot and not prof.snapshot:   # before any download or build
            raise UsageError(f"{prof.name} does not support snapshots (see images/{prof.name}.toml)")
        guest = plan_guest(prof, kernel, debug, accel=accel)   # (as run plans it: a debug guest's memory too)
        spec, built = guest.resolve()
        k, base, dtb = guest.image(spec, built)
        if snapshot:
            boot = BootSpec(k.kernel, base.path, dtb)
            acc, _ = choose_accel(guest.profile, guest.accel, boot)
            snap = snapshots.ensure(guest.profile, boot, acc, boot_timeout, prepare=HEALTH_CMD)
    except KharnessError as e:
        _die(e)
    out.print(f"kernel    {k.kernel}")
    out.print(f"initramfs {base.path}")
    if dtb:
        out.print(f"dtb       {dtb}")
    out.print(f"release   {spec.release}")
    if snap is not None:
        out.print(f"snapshot  {snap.path} (saved in {snap.save_seconds:.2f}s)")


@cache_app.command("ls")
def cache_ls(verbose: bool = VERBOSE) -> None:
    """What the cache holds, per kind, with sizes."""
    ui.set_verbose(verbose)
    from rich.table import Table

    from kharness.cachectl import cache_entries

    t = Table(title="kharness cache")
    for col in ("kind", "entry", "size"):
        t.add_column(col)
    total = 0
    for kind, name, size in cache_entries():
        total += size
        t.add_row(kind, name, f"{size / 1e6:.1f} MB")
    from kharness.cachectl import abandoned_staging

    stale = abandoned_staging()
    for tmp in stale:
        t.add_row(tmp.parent.name, f"[yellow]{tmp.name} (left by a killed run)[/yellow]", "")
    out.print(t)
    out.print(f"total {total / 1e9:.2f} GB" + (f"; `kharness cache clean` removes {len(stale)} abandoned "
                                                f"staging director{'y' if len(stale) == 1 else 'ies'}" if stale else ""))


@cache_app.command("verify")
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
        _die(UsageError(f"no cache kind {', '.join(unknown)}", hint=f"kinds here: {', '.join(known) or 'none'}"))
    with ui.step("verifying the cache"):
        bad = verify(kind or None, fix)
    for k, name, why in bad:
        out.print(f"[red]{k}/{name}[/red]: {why}" + (" [dim](discarded)[/dim]" if fix else ""))
    out.print(f"{len(bad)} damaged entr{'y' if len(bad) == 1 else 'ies'}" if bad else "every sealed entry verifies")
    raise typer.Exit(1 if bad and not fix else 0)


@cache_app.command("clean")
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
    out.print(f"removed {n} entries, {size / 1e6:.1f} MB")


def main() -> None:
    """The boundary of every command: whatever escapes one is an error with exit 2 and one line,
    never a traceback with exit 1 (which means "the module failed"). KeyboardInterrupt is not an
    Exception: it keeps click's handling ("Aborted!"), or `run`'s own (exit 130)."""
    from kharness.unexpected import InternalError

    try:
        app()
    except KharnessError as e:  # commands handle their own; this is for one that does not
        _error_line(str(e))
        sys.exit(e.exit_code)
    except Exception as e:
        internal = InternalError(e)
        _error_line(str(internal))
        _traceback(internal.traceback)
        sys.exit(internal.exit_code)


if __name__ == "__main__":
    main()
