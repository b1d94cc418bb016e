"""Companion programs in a run: compiled in the build phase (a compile error fails the build),
handed to the guest with the modules (``/kh/bin/<name>``), run by ``program`` checks; background
ones stopped and judged after the last check (or in a Session's down()), before the unload."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from kharness.build.diagnostics import parse_diagnostics
from kharness.build.program import BuiltProgram, ProgramBuildError, ProgramSpec, build_program
from kharness.checks.kinds import program as kind
from kharness.result.model import CheckResult, cap
from kharness.runner.context import Context
from kharness.vm.errors import CommandTimeout, GuestDied, GuestError

PAYLOAD_DIR = "bin"    # under /kh in the guest, as the modules are
_slots = itertools.count(1)   # a background program's directory in the guest: unique within any guest


@dataclass
class Background:
    check: kind.ProgramCheck
    slot: int
    result: CheckResult            # the check's result, completed when it is stopped
    values: dict[str, str]


def spec(c: kind.ProgramCheck, module_dir: Path) -> ProgramSpec:
    return ProgramSpec(tuple(c.source), str(Path(module_dir).resolve()), tuple(c.cflags), tuple(c.include_dirs))


def checks_for(run: Context, checks) -> list[kind.ProgramCheck]:
    """The program checks this target runs."""
    return [c for c in checks if c.kind == kind.NAME and not (c.targets and run.profile.name not in c.targets)]


def _guest_name(run: Context, name: str) -> str:
    """``name``, or ``name-2``... when another program of this run is called so already."""
    taken = {Path(p).name for _, p in run.programs.values()}
    out, n = name, 1
    while out in taken:
        n += 1
        out = f"{name}-{n}"
    return out


def compile_one(run: Context, c: kind.ProgramCheck, module_dir: Path) -> tuple[BuiltProgram, str, bool]:
    """``c``'s program built for the run's target (once per run): (its build, its guest path,
    whether it was new to this run). ProgramBuildError when it does not compile."""
    k = kind.key(c)
    if k in run.programs:
        return (*run.programs[k], False)
    built = build_program(run.profile, spec(c, module_dir))
    guest = f"{kind.GUEST_BIN}/{_guest_name(run, built.name)}"
    run.programs[k] = (built, guest)
    run.values[kind.VALUE_PREFIX + k] = guest
    if run.result.programs is None:
        run.result.programs = []
    run.result.programs.append(built.record(guest))
    return built, guest, True


def build_all(run: Context, checks, module_dir: Path, ph) -> str:
    """The build phase's part: every program check's program (each once); a compile error fails
    the phase with the compiler's first error lines (its whole output in the phase log). Returns
    what the phase message adds ("" without programs)."""
    wanted = checks_for(run, checks)
    if not wanted:
        return ""
    base = str(Path(module_dir).resolve()) + "/"
    for c in wanted:
        try:
            compile_one(run, c, module_dir)
        except ProgramBuildError as e:
            ph.log = cap(e.command + "\n" + e.output)
            if run.result.build is not None:
                run.result.build.diagnostics += [d.to_dict() for d in parse_diagnostics(e.output)]
            raise run.fail("build", str(e).replace(base, "")) from None
    built = [b for b, _ in run.programs.values()]
    cached = sum(1 for b in built if b.cached)
    return f", {len(built)} program(s)" + (f" ({cached} cached)" if cached else "")


def payload(run: Context) -> dict[str, bytes]:
    """The run's programs as files for the guest's /kh (``bin/<name>``: executable there)."""
    return {f"{PAYLOAD_DIR}/{Path(guest).name}": built.path.read_bytes() for built, guest in run.programs.values()}


def ensure(run: Context, c: kind.ProgramCheck, values: dict[str, str], timeout: float) -> dict[str, str]:
    """``values`` with ``c``'s program in it, compiled and put into the guest first if this run
    has not yet (a Session's program: the run's own were built and delivered with the module)."""
    k = kind.VALUE_PREFIX + kind.key(c)
    if k in values:
        return values
    built, guest, new = compile_one(run, c, run.opts.module_dir)
    if new:
        run.step("check", f"mkdir -p {kind.GUEST_BIN}", timeout, "making /kh/bin")
        try:
            run.guest.put_file(guest, built.path.read_bytes(), timeout)
        except (CommandTimeout, GuestDied) as e:    # a hang or a dead guest, as in any step
            raise run.trouble("check", e, f"putting {built.name} into the guest") from None
        except GuestError as e:                      # the guest could not write the file
            raise run.fail("check", f"putting {built.name} into the guest failed: {e.message}") from None
        run.step("check", f"chmod 755 {guest}", timeout, f"making {guest} executable")
    return dict(values, **{k: guest})


def start(run: Context, c: kind.ProgramCheck, values: dict[str, str], timeout: float) -> CheckResult:
    """Start a background program; its result is completed when :func:`stop_all` stops it."""
    slot = next(_slots)
    cmd = kind.start_command(c, values, slot)
    res = run.step("check", cmd, c.timeout or timeout, f"check {c.name!r}")
    pid = res.stdout.strip()
    started = res.rc == 0 and pid.isdigit()
    cr = CheckResult(name=c.name, command=cmd.removeprefix(kind.STEP_CURSOR), status="pass" if started else "fail",
                     rc=None, expect_rc=c.expect_rc, stdout="", stderr=res.stderr, duration=res.duration,
                     message=(f"started in the background (pid {pid}); judged when it ends or is stopped after "
                              f"the last check" if started else
                              f"did not start in the background (exit {res.rc}): {res.stderr.strip()[:200]}"),
                     background={"pid": int(pid) if started else None,
                                 "ended": "running" if started else "not started"})
    if started:
        run.background.append(Background(c, slot, cr, values))
    return cr


def stop_all(run: Context, timeout: float) -> list[CheckResult]:
    """Stop every background program still running (SIGTERM, then SIGKILL: each wait bounded),
    collect its output and judge it; their results, completed in place."""
    done = []
    while run.background:
        bg = run.background.pop(0)
        t = time.monotonic()
        res = run.step("check", kind.stop_command(bg.slot), kind.stop_timeout(timeout),
                       f"stopping the background program of check {bg.check.name!r}")
        ended, rc = kind.parse_stop(res.stdout)
        out = run.step("check", kind.collect_command(bg.slot), timeout,
                       f"reading the output of the background program of check {bg.check.name!r}")
        problems = kind.judge_background(bg.check, ended, rc, out.stdout, out.stderr, bg.values)
        cr = bg.result
        cr.rc, cr.stdout, cr.stderr = rc, out.stdout, out.stderr
        cr.duration += time.monotonic() - t
        cr.status = "fail" if problems else "pass"
        cr.background = dict(cr.background or {}, ended=ended)
        cr.message = f"background program {kind.ENDED[ended]}" + (f" (exit status {rc})" if rc is not None else "")
        if problems:
            cr.message += ": " + "; ".join(problems)
        done.append(cr)
    return done
