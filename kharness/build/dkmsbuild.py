"""Build a module as DKMS builds it from its dkms.conf (see kharness.build.dkms for the reading).

DKMS copies the module's source to ``$dkms_tree/$module/$module_version/build``, applies its
patches there (``patch -p1 < patches/P``), runs ``PRE_BUILD`` (a script of the module, relative to
that directory), ``eval``\\s the make command there, checks that every
``BUILT_MODULE_LOCATION[n]BUILT_MODULE_NAME[n].ko`` exists and runs ``POST_BUILD``. kharness does
the same in its build cache: ``$dkms_tree`` is ``<build>/dkms``, the build directory a fresh copy
of the user's (which is never written), every command under one deadline and in the view of
kharness.build.buildview. A kernel or architecture the conf excludes raises
:class:`~kharness.build.dkms.BuildExcluded` before anything runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

from kharness import ui
from kharness.build import buildview, dkms, kbuild
from kharness.build.diagnostics import parse_diagnostics
from kharness.build.kbuild import BuildOutcome
from kharness.build.makefile import BuildPlan
from kharness.build.ownmake import run_logged
from kharness.build.toolchain import Toolchain
from kharness.kernels.store import HeadersBundle
from kharness.lock import file_lock

# Run by bash: $1 the build directory, $2 what to run. The script DKMS runs for PRE_BUILD and
# POST_BUILD is "$build_dir/$2", eval'ed (so its arguments are shell words) when its first word
# is executable; DKMS only warns when it is not.
_RUN_SCRIPT = r'''cd -- "$1" || exit 1
run="$1/$2"
if [[ -x ${run%% *} ]]; then eval "$run"; else echo "Warning: the $3 script ${run%% *} is not executable (DKMS skips it)"; fi
'''
_EVAL = 'cd -- "$1" && eval "$2"'


def run_dkms(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, *, jobs: int | None = None,
             timeout: float = 900) -> BuildOutcome:
    bdir = kbuild.build_dir(plan, headers, tc, ["dkms"])
    with file_lock(bdir.with_name(bdir.name + ".lock")):
        cached = kbuild.reuse(bdir, plan, tc)
        if cached is not None:
            return cached
        kbuild.check_headers(headers)
        return _build(plan, headers, tc, bdir, jobs or os.cpu_count() or 2, timeout)


def _dir_name(value: str) -> str:
    """A dkms.conf value (PACKAGE_NAME, PACKAGE_VERSION) used as ONE directory name under the
    build's dkms tree: a value with ``/`` or that is ``.``/``..`` would lead out of it (kharness
    removes and writes that directory), so it gets a harmless name, as odd names do."""
    if "/" in value or value in (".", ".."):
        stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", value).strip("_.")[:40] or "dir"
        return f"{stem}-{hashlib.sha256(value.encode(errors='surrogateescape')).hexdigest()[:8]}"
    return kbuild.shadow_name(value)


def _build(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, bdir: Path, jobs: int, timeout: float) -> BuildOutcome:
    deadline = time.monotonic() + timeout
    dkms_tree, source_tree = bdir / "dkms", bdir / "src"
    source = source_tree / "source"
    kbuild.copy_dir(plan.directory, source)   # what DKMS calls the source: the conf is read here

    def wrap_in(cwd):
        return lambda argv, env: buildview.command(argv, tc=tc, headers=headers, bdir=bdir, cwd=cwd,
                                                   user_dirs=[plan.directory], env=env)

    ctx = dkms.Context(headers.release, buildview.machine(tc), headers.build_dir, dkms_tree, source_tree)
    first = dkms.evaluate(source / dkms.FILENAME, ctx, cwd=source, wrap=wrap_in(source))
    # $dkms_tree/$module/$module_version/build, with names make and the shell take as they are.
    ctx = dkms.Context(ctx.kernelver, ctx.arch, ctx.kernel_source_dir, dkms_tree, source_tree,
                       _dir_name(first.package_name), _dir_name(first.package_version))
    build = dkms_tree / ctx.module / ctx.module_version / "build"
    assert build.resolve().is_relative_to(dkms_tree.resolve()), build
    if dkms_tree.exists():
        shutil.rmtree(dkms_tree)
    kbuild.copy_dir(source, build)
    (build.parent / "source").symlink_to(source)
    conf = dkms.evaluate(source / dkms.FILENAME, ctx, cwd=build, wrap=wrap_in(build))
    why = dkms.exclusion(conf, ctx)
    if why is not None:
        raise dkms.BuildExcluded(why)
    specs = conf.modules()
    make_cmd = dkms.dkms_make_command(conf, build, ctx, [*tc.make_vars(), "CONFIG_DEBUG_INFO_BTF_MODULES="], jobs)
    env = {**ctx.env(), "PWD": str(build), "HOME": os.environ.get("HOME", "/tmp"), "ARCH": tc.arch,
           "CROSS_COMPILE": tc.cross_compile}
    env.pop("PATH")
    steps: list[tuple[str, list[str]]] = []
    for p in conf.patches:
        patch = (build / "patches" / p).resolve()
        if not patch.is_relative_to((build / "patches").resolve()) or not patch.is_file():
            return _failed(plan, tc, bdir, build, make_cmd, "",
                           f"dkms.conf PATCH {p!r} is not a file in patches/ (DKMS reads patches from there)")
        steps.append((f"applying patch {p}", ["bash", "-c", 'cd -- "$1" && patch -p1 < "./patches/$2"', "kh", str(build), p]))
    if conf.get("PRE_BUILD"):
        steps.append(("PRE_BUILD", ["bash", "--noprofile", "--norc", "-c", _RUN_SCRIPT, "kh", str(build),
                                    conf.get("PRE_BUILD"), "pre_build"]))
    steps.append(("make", ["bash", "--noprofile", "--norc", "-c", _EVAL, "kh", str(build), make_cmd]))
    if conf.get("POST_BUILD"):
        steps.append(("POST_BUILD", ["bash", "--noprofile", "--norc", "-c", _RUN_SCRIPT, "kh", str(build),
                                     conf.get("POST_BUILD"), "post_build"]))
    log, start = "", time.monotonic()
    with ui.step(f"building {plan.directory.name} for {headers.release} as DKMS would"):
        for what, argv in steps:
            run_cmd, run_env = wrap_in(build)(argv, env)
            out, rc = run_logged(run_cmd, build, run_env, max(1.0, deadline - time.monotonic()), f"dkms.conf {what}")
            log += f"# {what}\n{out}"
            if rc != 0:
                return _failed(plan, tc, bdir, build, make_cmd, log, f"dkms.conf {what} failed (exit {rc})",
                               time.monotonic() - start)
    duration = time.monotonic() - start
    files = [f"{s.location}{s.name}.ko" for s in specs]
    missing = [f for f in files if not (build / f).is_file()]
    if missing:
        return _failed(plan, tc, bdir, build, make_cmd, log, f"the build made no {', '.join(missing)} "
                       f"(BUILT_MODULE_LOCATION/BUILT_MODULE_NAME in dkms.conf)", duration)
    mods = kbuild.collect_modules(build, files if specs else None)
    if not mods:
        return _failed(plan, tc, bdir, build, make_cmd, log, "the build produced no .ko file", duration)
    outcome = BuildOutcome(True, mods, parse_diagnostics(log, {str(build): str(plan.directory)}), log, duration,
                           False, ["bash", "-c", make_cmd], bdir, None, compiler=tc.version, built_by="dkms",
                           extra={"dkms": _summary(conf)})
    kbuild.record(bdir, plan, headers, build, outcome, [str(m.path.relative_to(build)) for m in mods])
    return outcome


def _summary(conf: dkms.DkmsConf) -> dict:
    return {"package": conf.package_name, "version": conf.package_version, "make": conf.make_command or None,
            "patches": conf.patches, "pre_build": conf.get("PRE_BUILD") or None,
            "post_build": conf.get("POST_BUILD") or None}


def _failed(plan, tc, bdir, build, make_cmd, log, fallback_error, duration=0.0) -> BuildOutcome:
    diags = parse_diagnostics(log, {str(build): str(plan.directory)})
    err = next((d.format() for d in diags if d.severity == "error"), fallback_error)
    return BuildOutcome(False, [], diags, log, duration, False, ["bash", "-c", make_cmd], bdir, None,
                        error=err, compiler=tc.version, built_by="dkms")
