"""The build phase: the kernel chosen (and built, for a source tree), the module compiled against
its headers, every .ko checked to match the kernel; khgpio built too when kharness.toml asks."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from rich.markup import escape

from kharness import seal, ui
from kharness.build.kbuild import BuildOutcome, BuiltModule, run_kbuild
from kharness.build.makefile import plan_build
from kharness.build.route import BuildExcluded, build_module
from kharness.build.toolchain import pick_toolchain
from kharness.errors import DamagedCacheEntry, InfraError, UsageError
from kharness.hw import gpio as khgpio
from kharness.hostcc import cc_major
from kharness.kernels.resolve import KernelSpec, series_of
from kharness.kernels.source import SourceBuild
from kharness.kernels.store import ensure_headers
from kharness.modconfig import apply_skip, resolve_expect_errno
from kharness.plan import insmod_order
from kharness.result.model import cap
from kharness.result.records import BuildRecord, KernelRecord
from kharness.runner import programs
from kharness.runner.context import Context
from kharness.runner.options import reproducer_cmd
from kharness.runner.prepare import Prepared
from kharness.runner.verdict import Skipped

# How the build phase and the summary say which way the module was built (kharness.build.route).
BUILT_BY = {"dkms": "built by its dkms.conf", "own-makefile": "built by its Makefile's default target",
            "kbuild": "built with kbuild M="}


@dataclass
class Built:
    spec: KernelSpec
    kernel: SourceBuild | None               # the kernel built from a source tree, if it was
    modules: list[BuiltModule]               # in insmod order
    params: dict[str, dict[str, str]]        # {module: {name: value}}
    load: list[BuiltModule]                  # the modules to insmod: without [module] skip's, in insmod order
    expected: dict[str, str]                 # {module: errno}: loads that must fail ([load] expect_errno)
    headers: object                          # the kernel's headers (HeadersBundle) it was built against


def build(run: Context, prep: Prepared) -> Built:
    opts, r, guest_plan = run.opts, run.result, prep.guest
    if opts.build_on_remote:   # on the board, against its own headers: no kernel package fetched
        from kharness.runner import remote_build

        return remote_build.build(run, prep, finish)
    tree = prep.host_tree   # --remote with --headers/--kernel-tree: the user's tree, nothing fetched
    from_debian = guest_plan.from_debian and tree is None
    built_kernel: SourceBuild | None = None
    if tree is not None:
        spec = KernelSpec(tree.release, series_of(tree.release), "", "", (), (), None)
        r.kernel = KernelRecord(**spec.to_dict(), headers={"source": tree.source, "dir": str(tree.path),
                                                           "module_symvers": tree.has_symvers})
        r.reproducer["kharness"] = reproducer_cmd(opts, tree.release)
    elif from_debian:
        spec, _ = _resolve(run, guest_plan)
        r.kernel = KernelRecord(**spec.to_dict())
        r.reproducer["kharness"] = reproducer_cmd(opts, spec.release)

    with run.phase("build") as ph:
        # (for self-built kernels the kernel too, the first time)
        if tree is not None:
            headers = tree.headers()
        elif from_debian:
            headers = ensure_headers(spec)
            if opts.remote:
                r.kernel.headers = {"source": "archive", "dir": str(headers.build_dir)}
        else:
            spec, built_kernel = _resolve(run, guest_plan)
            headers = built_kernel.headers_bundle()
            r.kernel = KernelRecord(**spec.to_dict(), built_from=built_kernel.origin,
                                    config_fragments=list(built_kernel.config_fragments),
                                    build_tree=str(built_kernel.out))
            if run.debug:
                r.kernel.debug = list(run.debug)
                r.kernel.build_seconds = built_kernel.build_seconds
            r.reproducer["kharness"] = reproducer_cmd(opts, None)
        tc = pick_toolchain(run.profile, spec)
        r.compiler = tc.version + (f" ({tc.note})" if tc.note else "")
        if tree is not None:
            _compiler_note(tree, tc)
        try:
            outcome = _build_module(run, prep, headers, tc)
        except DamagedCacheEntry as e:
            if tree is not None:   # (never: a user's tree is not a cache entry, never discarded)
                raise
            # Headers altered on disk since they were unpacked: unpack (or build) them again.
            ui.info(f"[yellow]{e.message}: making it again[/yellow]")
            seal.discard(e.entry)
            if from_debian:
                headers = ensure_headers(spec)
            else:
                spec, built_kernel = guest_plan.resolve()
                headers = built_kernel.headers_bundle()
            outcome = _build_module(run, prep, headers, tc)
        _record(run, outcome)
        if tc.sysroot is not None:
            r.build.environment = seal.read_meta(tc.sysroot)   # what apt installed there
        if outcome.modules:
            run.shadow_map = (str(outcome.modules[0].path.parent), str(opts.module_dir.resolve()))
        if not outcome.ok:
            ph.log = cap(outcome.log)
            raise run.fail("build", outcome.error)
        for m in outcome.modules:
            if m.vermagic.split(" ")[0] != spec.release:
                raise run.fail("build", f"{m.name}.ko has vermagic {m.vermagic.strip()!r}, "
                                        f"the target kernel is {spec.release}")
        # The module's user-space programs (program checks), for the target: a compile error is
        # the module's build failure.
        progs = programs.build_all(run, prep.config.checks, opts.module_dir, ph)
        warnings = sum(1 for x in outcome.diagnostics if x.severity == "warning")
        ph.message = ("reused the cached build" if outcome.cached else f"{len(outcome.modules)} module(s)") + \
            (f", {warnings} warning(s)" if warnings else "") + \
            (f" ({BUILT_BY[outcome.built_by]})" if outcome.built_by in BUILT_BY else "") + progs
    if prep.config.gpio is not None:
        run.khgpio = _build_khgpio(run, headers, tc)
    return finish(run, prep, spec, built_kernel, outcome.modules, headers)


def _resolve(run: Context, guest_plan):
    """The kernel to build for; a board's kernel that Debian's archive does not have is said in
    one line, with the way to build for it anyway."""
    if not run.opts.remote:
        return guest_plan.resolve()
    try:
        return guest_plan.resolve()
    except UsageError:
        from kharness.runner.remote_build import not_in_archive

        raise not_in_archive(guest_plan.kernel or "", run.profile.name) from None


def _compiler_note(tree, tc) -> None:
    """A tree's kernel built with a newer gcc than the host's: the flags its Makefiles pass may be
    unknown here. Said, not refused (they often are not)."""
    want, have = tree.gcc_major(), cc_major(tc.cc)
    if want and have and want > have:
        ui.info("[yellow]" + escape(f"warning: {tree.given}'s kernel was built with gcc {want}, this host builds "
                                    f"with gcc {have}: if it fails on an unknown option, build on the board "
                                    f"(--build-on-remote)") + "[/yellow]")


def finish(run: Context, prep: Prepared, spec: KernelSpec, built_kernel: SourceBuild | None,
           built: list[BuiltModule], headers) -> Built:
    """The built modules in load order, with their parameters, what is loaded and what must fail."""
    modules = insmod_order(built, prep.config)
    per_module = params_for(modules, prep.params)
    run.result.params = per_module
    # What is loaded, and how, is judged now (exit 2): [module] skip, [load] expect_errno.
    names = apply_skip(prep.config, [m.name for m in modules])
    load = [m for m in modules if m.name in names]
    expected = resolve_expect_errno(prep.config, names)
    return Built(spec, built_kernel, modules, per_module, load, expected, headers)


def _build_module(run: Context, prep: Prepared, headers, tc) -> BuildOutcome:
    """The module built the way its own files ask (kharness.build.route); a cell its dkms.conf
    excludes ends the run as skipped, with the reason."""
    try:
        return build_module(prep.build, headers, tc)
    except BuildExcluded as e:
        ph = run.result.phase("build")
        ph.status, ph.message = "skipped", e.reason
        raise Skipped(e.reason) from None


def _record(run: Context, o: BuildOutcome) -> None:
    run.result.build = BuildRecord(
        cached=o.cached, command=shlex.join(o.command), directory=str(o.build_dir),
        generated_makefile=o.makefile, compiler=o.compiler, diagnostics=[d.to_dict() for d in o.diagnostics],
        built_by=o.built_by, built_by_note=o.note or None, dkms=o.extra.get("dkms"))
    run.result.modules = [m.to_dict() for m in o.modules]


def _build_khgpio(run: Context, headers, tc) -> BuiltModule:
    """The kharness virtual GPIO controller, built for this kernel like any module (cached)."""
    cfg = headers.build_dir / ".config"
    if cfg.is_file():
        text = cfg.read_text(errors="replace")
        missing = [o for o in khgpio.REQUIRED_CONFIG if not re.search(rf"^{o}=[ym]$", text, re.M)]
        if missing:
            raise UsageError(f"kernel {headers.release} lacks {', '.join(missing)}, which the kharness "
                             f"virtual GPIO controller ([gpio] in kharness.toml) needs",
                             hint="use a kernel built with them (--kernel-config a fragment that sets them)")
    o = run_kbuild(plan_build(khgpio.SOURCE_DIR), headers, tc)
    if not o.ok or not o.modules:
        raise InfraError(f"the kharness virtual GPIO controller did not build for {headers.release}: {o.error}")
    run.result.build.khgpio = {"cached": o.cached, "directory": str(o.build_dir)}
    return o.modules[0]


def params_for(mods: list[BuiltModule], params: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Parameters per module: one given without a module name is the only module's."""
    names = [m.name for m in mods]
    out = {n: {} for n in names}
    for mod, kv in params.items():
        if mod == "":
            if len(names) > 1 and kv:
                raise UsageError(f"several modules are built ({', '.join(names)}): say which one a "
                                 f"parameter is for", hint="--param MODULE.KEY=VALUE")
            out[names[0]].update(kv)
        elif mod in out:
            out[mod].update(kv)
        else:
            raise UsageError(f"parameter for unknown module {mod!r}", hint=f"built: {', '.join(names)}")
    return out
