"""The check phase: every check of kharness.toml (all its repetitions) in the guest, then the
health look. A failed check leaves the guest usable, so the module is still unloaded."""

from __future__ import annotations

from kharness import checks
from kharness.modconfig import ModuleConfig
from kharness.result.model import CheckResult
from kharness.checks.kinds import program
from kharness.runner import programs
from kharness.runner.context import Context


def run_check(run: Context, c: checks.BaseCheck, values: dict[str, str], timeout: float) -> CheckResult:
    """One check (all its repetitions) in the guest; a hang or a dead guest raises ModuleFailure."""
    if c.kind == program.NAME:
        values = programs.ensure(run, c, values, timeout)
        if c.background:
            return programs.start(run, c, values, timeout)
    cr = None
    for i in range(c.repeat):
        cmd = checks.command_for(c, values, run.profile)
        res = run.step("check", cmd, c.timeout or timeout, f"check {c.name!r}")
        problems = checks.judge(c, res.rc, res.stdout, res.stderr, values, run.profile)
        if problems and c.repeat > 1:
            problems = [f"repetition {i + 1} of {c.repeat}: {p}" for p in problems]
        cr = CheckResult(name=c.name, command=cmd.removeprefix(checks.STEP_CURSOR),
                         status="fail" if problems else "pass", rc=res.rc, expect_rc=c.expect_rc,
                         stdout=res.stdout, stderr=res.stderr, duration=res.duration,
                         message="; ".join(problems))
        if problems:
            break
    return cr


def exercise(run: Context, config: ModuleConfig, timeout: float) -> None:
    failed = []
    with run.phase("check") as ph:
        values = run.check_values()
        for c in config.checks:
            if c.targets and run.profile.name not in c.targets:
                run.result.checks.append(CheckResult(name=c.name, command="", status="skipped", rc=None,
                                                     expect_rc=c.expect_rc,
                                                     message=f"only for {', '.join(c.targets)}"))
                continue
            cr = run_check(run, c, values, timeout)
            run.result.checks.append(cr)
            if cr.status == "fail":
                failed.append(cr)
        # Before the health look and the unload: a program holding the device open would make
        # rmmod fail, and what it did is judged now.
        failed += [cr for cr in programs.stop_all(run, timeout) if cr.status == "fail"]
        run.check_health("check", timeout)
        if failed:
            raise run.fail("check", f"{len(failed)} of {len(config.checks)} check(s) failed: "
                                    f"{failed[0].name}: {failed[0].message}", guest_usable=True)
        skipped = sum(1 for c in run.result.checks if c.status == "skipped")
        ph.message = (f"{len(config.checks) - skipped} check(s) passed" + (f", {skipped} skipped" if skipped else "")
                      if config.checks else "no checks defined")
