"""Build a module with its own Makefile's default target, as its author runs ``make``.

Real Makefiles do more than kbuild's ``M=`` does: LDD3's passes ``LDDINC=$(PWD)/../include``
from its default target (kbuild alone turns ``-I$(LDDINC)`` into a bare ``-I``). So when a
directory's Makefile has rules of its own, kharness runs ``make`` there, in a fresh copy of the
module directory (the levels above stay links: ``../include``), with the kernel given under every
name such Makefiles use, the toolchain's ``ARCH``/``CROSS_COMPILE``/``CC``, and the view of
kharness.build.buildview. When that builds no ``.ko`` the module is built with kbuild ``M=``, and
the outcome says so.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from kharness import proc, ui
from kharness.build import buildview, kbuild
from kharness.build.diagnostics import parse_diagnostics
from kharness.build.kbuild import BuildOutcome
from kharness.build.makefile import BuildPlan, own_makefile
from kharness.build.toolchain import Toolchain
from kharness.kernels.store import HeadersBundle
from kharness.lock import file_lock

KERNEL_DIR_VARS = ("KDIR", "KERNELDIR", "KERNEL_DIR", "KSRC", "KERNEL_SRC", "KERNEL_SOURCE", "KBUILD_DIR",
                   "LINUX_DIR", "KERNEL_PATH")
RELEASE_VARS = ("KVER", "KVERSION", "KERNEL_VERSION", "KRELEASE", "TARGET_KERNEL")
# `ifneq ($(KERNELRELEASE),)`: the Makefile tells kbuild's reading of it from the user's `make`
# by KERNELRELEASE being set. Given on the command line it would take the kbuild branch.
_TESTS_KERNELRELEASE_RE = re.compile(r"^\s*(?:ifn?eq|ifn?def)\b.*\bKERNELRELEASE\b", re.M)
FALLBACK = "fallback.json"


def make_vars(makefile: Path, headers: HeadersBundle, tc: Toolchain) -> list[str]:
    """The command-line variables for the module's own ``make``."""
    kdir = str(headers.build_dir)
    out = [*tc.make_vars(), *(f"{v}={kdir}" for v in KERNEL_DIR_VARS),
           *(f"{v}={headers.release}" for v in RELEASE_VARS),
           # No BTF for test builds: it needs pahole matching the kernel's, and insmod does not.
           "CONFIG_DEBUG_INFO_BTF_MODULES="]
    if not _TESTS_KERNELRELEASE_RE.search(makefile.read_text(errors="replace")):
        out.append(f"KERNELRELEASE={headers.release}")
    return out


def run_own_makefile(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, *, jobs: int | None = None,
                     timeout: float = 900) -> BuildOutcome:
    """The module's own default target; kbuild ``M=`` when it builds no module."""
    makefile = own_makefile(plan.directory)
    assert makefile is not None, "route only sends directories with their own Makefile rules here"
    bdir = kbuild.build_dir(plan, headers, tc, ["own-makefile"])
    with file_lock(bdir.with_name(bdir.name + ".lock")):
        cached = kbuild.reuse(bdir, plan, tc)
        if cached is not None:
            return cached
        failed = _known_fallback(bdir, plan)
        if failed is None:
            own = _build(plan, makefile, headers, tc, bdir, jobs, timeout)
            if own.ok:
                return own
            why = own.error
            # Remembered only when the same inputs would fail the same way again (no module, a
            # compiler error), never a timeout on a busy host or a missing tool.
            if own.error == "built no .ko file" or any(d.severity == "error" for d in own.diagnostics):
                (bdir / FALLBACK).write_text(json.dumps({"why": why, "inputs": kbuild.manifest_inputs(plan, bdir, headers)}))
        else:
            why, own = failed["why"], None
    fallback = kbuild.run_kbuild(plan, headers, tc, jobs=jobs, timeout=timeout)
    note = f"the Makefile's default target {why}; built with kbuild M= instead"
    if fallback.ok or own is None or not any(d.severity == "error" for d in own.diagnostics):
        fallback.note = note if fallback.ok else note + ", which failed too"
        if own is not None:
            fallback.log = f"{own.log}\n[kharness: {note}]\n{fallback.log}"
        return fallback
    # Both failed and the module's own build says why (a compiler error): that is the one to show.
    own.note = f"the Makefile's default target {why}; kbuild M= failed too"
    own.error = next(d.format() for d in own.diagnostics if d.severity == "error")
    own.log = f"{own.log}\n[kharness: kbuild M= failed too]\n{fallback.log}"
    return own


def _known_fallback(bdir: Path, plan: BuildPlan) -> dict | None:
    """The recorded failure of the default target, when nothing changed since (it is not run
    again for nothing)."""
    try:
        known = json.loads((bdir / FALLBACK).read_text())
        if kbuild.inputs_unchanged(known["inputs"], plan):
            return known
    except (OSError, ValueError, KeyError, TypeError):
        pass
    (bdir / FALLBACK).unlink(missing_ok=True)
    return None


def _build(plan: BuildPlan, makefile: Path, headers: HeadersBundle, tc: Toolchain, bdir: Path,
           jobs: int | None, timeout: float) -> BuildOutcome:
    kbuild.check_headers(headers)
    shadow = kbuild.make_shadow(plan.directory, bdir / "tree", copy=True)
    cmd = ["make", f"-j{jobs or os.cpu_count() or 2}", *make_vars(makefile, headers, tc)]
    env = {"PWD": str(shadow), "LC_ALL": "C", "HOME": os.environ.get("HOME", "/tmp"),
           "ARCH": tc.arch, "CROSS_COMPILE": tc.cross_compile}
    run_cmd, run_env = buildview.command(cmd, tc=tc, headers=headers, bdir=bdir, cwd=shadow,
                                         user_dirs=[buildview.user_top(plan.directory)], env=env)
    start = time.monotonic()
    with ui.step(f"building {plan.directory.name} for {headers.release} with its Makefile"):
        log, rc = run_logged(run_cmd, shadow, run_env, timeout, "the module's own make")
    duration = time.monotonic() - start
    diags = parse_diagnostics(log, {str(shadow): str(plan.directory)})
    mods = kbuild.collect_modules(shadow) if rc == 0 else []
    if rc != 0 or not mods:
        first = next((d.format() for d in diags if d.severity == "error"), None)
        why = "built no .ko file" if rc == 0 else f"failed: {first}" if first else f"failed (exit {rc})"
        return BuildOutcome(False, [], diags, log, duration, False, cmd, bdir, None, error=why,
                            compiler=tc.version, built_by="own-makefile")
    outcome = BuildOutcome(True, mods, diags, log, duration, False, cmd, bdir, None, compiler=tc.version,
                           built_by="own-makefile")
    kbuild.record(bdir, plan, headers, shadow, outcome, [str(m.path.relative_to(shadow)) for m in mods])
    return outcome


def run_logged(argv: list[str], cwd: Path, env: dict[str, str] | None, timeout: float, what: str) -> tuple[str, int]:
    """Output and exit status of a build command; past ``timeout`` its process group is killed."""
    try:
        p = proc.run(argv, cwd=cwd, env=env, timeout=timeout, what=what, merge_stderr=True)
        return p.stdout, p.returncode
    except proc.ProcessTimeout as e:
        return (e.stdout + e.stderr + f"\n[kharness: {what} timed out after {timeout:g}s; it and its children "
                f"were stopped]"), -1
    except FileNotFoundError as e:
        return f"{e.filename or argv[0]} is not installed", 127
