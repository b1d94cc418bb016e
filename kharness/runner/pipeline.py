"""One run as a pipeline of phases: prepare -> build -> image -> boot -> load -> check -> unload,
then the verdict; the guest is torn down on every path.

:class:`Run` is the run's state (:class:`kharness.runner.context.Context`) with the pipeline on
top. ``execute()`` is `kharness run`; ``up()``, ``step()``, ``health_look()``, ``down()``,
``settle()`` and ``close()`` are what a :class:`kharness.session.Session` drives in between."""

from __future__ import annotations

import time

from kharness import checks
from kharness.errors import KharnessError, ModuleFailure
from kharness.result.finding import Finding
from kharness.result.model import CheckResult, Result
from kharness.runner import programs, ssh_boot, verdict
from kharness.runner.boot import boot
from kharness.runner.build import build
from kharness.runner.context import Context
from kharness.runner.exercise import exercise, run_check
from kharness.runner.image import image
from kharness.runner.load import load
from kharness.runner.prepare import prepare
from kharness.runner.teardown import teardown
from kharness.runner.unload import unload
from kharness.vm.channel import CommandResult
from kharness.vm.errors import GuestError


class Run(Context):
    """One run; ``execute()`` returns the finished Result."""

    def execute(self) -> Result:
        start = time.monotonic()
        try:
            clean = False
            try:
                self._pipeline()
                clean = True
            finally:
                # A clean run's guest is quiet: stop it while the caller writes the result.
                self.close(background=clean)
            self.settle(None)
        except (ModuleFailure, KharnessError, verdict.Skipped) as e:
            self.settle(e)
        except Exception as e:   # unforeseen (a bug, a host failure): an infrastructure error, not a crash
            from kharness.unexpected import InternalError

            internal = InternalError(e)
            self.settle(internal)
            self.result.traceback = internal.traceback
        finally:
            self.result.duration = time.monotonic() - start
        return self.result

    def _pipeline(self) -> None:
        self.up()
        try:
            exercise(self, self.config, self.step_timeout)
        except ModuleFailure as e:
            if not e.guest_usable:
                raise
            # The checks failed but the guest is fine: still unload, so the result also says
            # whether rmmod is clean. The check failure stays the run's verdict.
            try:
                self.down()
            except ModuleFailure:
                pass
            raise e from None
        self.down()

    def up(self) -> None:
        """Build, make the image, boot and load: the guest is ready for checks (or a Session)."""
        prep = prepare(self)
        built = build(self, prep)
        staged = image(self, prep, built)
        if self.opts.remote:
            ssh_boot.boot_remote(self, prep, built, staged)
        elif self.opts.guest == "debian":
            ssh_boot.boot_distro(self, prep, built, staged)
        else:
            boot(self, prep, built, staged)
        self.tested = {m.name for m in built.modules}
        loaded = load(self, built.load, built.params, prep.config, prep.timeout, staged.deps, built.expected)
        # Only what loaded is checked against and unloaded: not a module [module] skip left out,
        # nor one whose load failed as [load] expect_errno said it must.
        self.modules, self.config, self.step_timeout = loaded, prep.config, prep.timeout

    def down(self) -> None:
        """Stop the background programs a Session left running (judging them), unload the
        module(s) and look at the kernel's health. The guest is then simply stopped (by close())."""
        failed = [cr for cr in programs.stop_all(self, self.step_timeout) if cr.status == "fail"]
        unload(self, self.modules, self.config, self.step_timeout)
        if failed:
            raise self.fail("check", f"background program of check {failed[0].name!r}: {failed[0].message}")

    def stop_programs(self) -> list[CheckResult]:
        """Stop the background programs still running now; their judged results."""
        return programs.stop_all(self, self.step_timeout)

    def settle(self, e: BaseException | None) -> None:
        """The verdict: pass, a module failure (``fail``) or a usage/infrastructure error."""
        verdict.settle(self.result, e)

    def close(self, background: bool = False) -> None:
        """Stop the guest and remove the run directory (or keep it, with --keep); safe to call
        twice. ``background``: the kill and the removal may end after this returns."""
        guest, self.guest = self.guest, None
        workdir, self.workdir = self.workdir, None
        teardown(guest, workdir, self.opts.keep, self.result, background=background)

    # -- what a Session does between up() and down() ---------------------------------------------
    def health_look(self, phase: str = "check", timeout: float | None = None) -> list[Finding]:
        """Kernel reports (oops, WARN, BUG, taint...) since the last look that fail a run; a hang
        or a dead guest fails ``phase`` (ModuleFailure)."""
        try:
            return self.look(phase, timeout or self.step_timeout)
        except GuestError as e:
            raise self.trouble(phase, e, "the health check") from None

    def run_check(self, c: checks.BaseCheck, values: dict[str, str], timeout: float) -> CheckResult:
        """One check (all its repetitions) in the guest; a hang or a dead guest raises ModuleFailure."""
        return run_check(self, c, values, timeout)

    def console_tail(self, last: int = 32768) -> str:
        return self.guest.console_text(last) if self.guest is not None else ""

    def command(self, command: str, timeout: float | None = None, phase: str = "check") -> CommandResult:
        """A shell command in the guest (``step`` with the run's step timeout)."""
        return self.step(phase, command, timeout or self.step_timeout, command[:60])
