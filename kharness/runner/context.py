"""One run's state while its phases execute, and the few things every phase does with it: keep a
phase's book (``phase(name)``), fail it, run a guest step, and take a health look. What a look or
a stuck step *means* is decided in :mod:`kharness.runner.verdict`; here it is only gathered."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from kharness import agent_client as agent
from kharness import checks
from kharness.errors import ModuleFailure
from kharness.guest import ConsoleSideChannel
from kharness.result.finding import Finding, FindingKind
from kharness.result.model import Phase, Result, cap
from kharness.runner import verdict
from kharness.runner.options import DEFAULT_TIMEOUT, RunOptions
from kharness.vm.errors import CommandTimeout, GuestError

if TYPE_CHECKING:
    from kharness.build.kbuild import BuiltModule
    from kharness.build.program import BuiltProgram
    from kharness.guest import Guest, GuestFactory
    from kharness.modconfig import ModuleConfig
    from kharness.runner.deps import Deps
    from kharness.targets import TargetProfile
    from kharness.vm.channel import CommandResult


# How long a board that stopped answering gets to show its sshd is still there.
BOARD_REACH_TIMEOUT = 5.0


@dataclass(frozen=True)
class ModuleTools:
    """What loads and unloads the modules in the guest: the words before insmod's FILE and
    PARAMs and before rmmod's NAMEs. Both print busybox's messages (``insmod: can't insert
    'FILE': ...``), which the load and unload phases read."""

    insmod: tuple[str, ...] = ("insmod",)
    rmmod: tuple[str, ...] = ("rmmod",)

    def insmod_argv(self, path: str, args=()) -> list[str]:
        return [*self.insmod, path, *args]

    def rmmod_argv(self, *names: str) -> list[str]:
        return [*self.rmmod, *names]


# busybox's own applets: the initramfs guest's, where they cost no exec of another binary.
PLAIN_MODULE_TOOLS = ModuleTools()
# kh-agent's: a guest over SSH (a Debian guest, a board), where insmod and rmmod are kmod's, a
# dynamic binary whose every exec costs tens of milliseconds under TCG.
AGENT_MODULE_TOOLS = ModuleTools(insmod=("kh-agent", "insmod"), rmmod=("kh-agent", "rmmod"))


def module_tool(argv: list[str]) -> tuple[str, str]:
    """(``insmod``|``rmmod``, the file or module it names) of a module command, either tools'."""
    words = argv[1:] if argv[0] == "kh-agent" else argv
    return words[0], words[1]


class Context:
    """The run's state: what the phases found out and what the next ones need."""

    def __init__(self, opts: RunOptions, guest_factory: GuestFactory | None = None):
        self.opts = opts
        # Makes the guest: called as factory(profile, boot, workdir, accel[, extra_args]); None is
        # the QEMU guest (looked up at call time). A fake guest judges verdicts without QEMU.
        self.guest_factory = guest_factory
        self.result = Result(module_dir=str(opts.module_dir), target=opts.target,
                             kernel_wanted=opts.kernel or "default")
        self.result.guest = {"kind": "remote" if opts.remote else opts.guest}
        self.guest: Guest | None = None
        self.workdir: Path | None = None
        self.taint = 0
        self.shadow_map: tuple[str, str] | None = None   # (build tree, the user's directory)
        self.profile: TargetProfile | None = None
        self.khgpio: BuiltModule | None = None
        self.programs: dict[str, tuple[BuiltProgram, str]] = {}   # program key -> (its build, its guest path)
        self.background: list = []             # background programs started and not yet stopped (runner.programs)
        self.values: dict[str, str] = {}      # what {placeholders} in params and checks resolve to
        self.devices_at_boot: dict[str, str] = {}
        self.char_devices: dict[str, str] = {}    # {name: major}, as of the last health look
        self.listed: set[str] = set()              # modules in /proc/modules, as of the last look
        self.boot_log = ""                         # a restored guest's boot log, saved with its snapshot
        self.first_look: CommandResult | None = None   # the health look a restored guest's setup took
        self.tested: set[str] = set()              # the modules under test (not khgpio)
        self.modules: list[BuiltModule] = []     # the modules under test that loaded (and are unloaded)
        self.deps: Deps | None = None            # the kernel's own modules loaded before them
        self.config: ModuleConfig | None = None
        self.step_timeout = DEFAULT_TIMEOUT
        self.debug: tuple[str, ...] = ()       # the debug kernel's checkers, if it is one
        self.module_maps: list = []            # where the modules were loaded (kmemleak attribution)
        self.last_module_change = 0.0          # when the last insmod/rmmod returned
        self._step_mark = 0                    # the console's mark when the last step began
        self.after_load = ""                   # a guest command run once the modules are in (udevadm settle)
        self.module_tools = PLAIN_MODULE_TOOLS   # AGENT_MODULE_TOOLS: set by the boot of a guest over SSH

    # -- bookkeeping ---------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """A phase's book: ``running`` while the body runs, its duration however it ends, and
        ``pass`` when the body returns without having failed it. A failure (``fail()``) marks it
        ``fail``; any other exception leaves it ``running``, which the verdict turns to ``error``."""
        p = self.result.phase(name)
        p.status = "running"
        t = time.monotonic()
        try:
            yield p
        finally:
            p.duration = time.monotonic() - t
        if p.status == "running":
            p.status = "pass"

    def fail(self, phase: str, message: str, guest_usable: bool = False) -> ModuleFailure:
        """Mark ``phase`` failed (keeping a message it already has); the exception to raise."""
        p = self.result.phase(phase)
        p.status = "fail"
        p.message = p.message or message
        return ModuleFailure(phase, message, guest_usable)

    def check_values(self) -> dict[str, str]:
        """What placeholders resolve to for checks: the run's values with {module}, {param.*}."""
        return dict(self.values, **checks.values_for([m.name for m in self.modules], self.result.params))

    # -- the guest -----------------------------------------------------------------------------
    def step(self, phase: str, command: str, timeout: float, what: str) -> CommandResult:
        """One command in the guest; a hang or a dead guest fails ``phase`` (ModuleFailure)."""
        assert self.guest
        if isinstance(self.guest, ConsoleSideChannel):
            self._step_mark = self.guest.console_mark()
        self._step_started = time.monotonic()
        try:
            return self.guest.run(command, timeout)
        except GuestError as e:
            raise self.trouble(phase, e, what) from None

    def findings(self, phase: str, text: str, baseline: bool = False) -> list[Finding]:
        """Record the kernel reports in ``text``; those that fail the run."""
        found = verdict.scan(text, phase, tested=self.tested, baseline=baseline, shadow_map=self.shadow_map)
        self.result.findings += found
        return verdict.blocking(found)

    def look(self, phase: str, timeout: float, command: str = agent.HEALTH_CMD) -> list[Finding]:
        """A health look (taint, the kernel log since the last look, loaded modules, character
        devices) recorded in the result; the findings that fail the run. Guest errors propagate."""
        assert self.guest
        r, self.first_look = self.first_look, None   # a restored guest's look came with its setup
        if r is None:
            r = self.guest.run(command, timeout)
        seen = agent.parse_health(r.stdout)
        taint = self.taint if seen.taint is None else seen.taint
        log = seen.log
        self.listed = set(seen.modules)
        self.char_devices = dict(seen.char_devices)
        if phase == "boot" and self.boot_log:
            log = self.boot_log + log
        self.result.dmesg[phase] = self.result.dmesg.get(phase, "") + log
        if phase != "boot":   # KUnit at boot is the kernel's own (built-in suites), not the module's
            self.result.kunit = verdict.kunit_record(self.result.kunit, phase, self.result.dmesg[phase])
        bad = self.findings(phase, log, baseline=(phase == "boot"))
        if phase != "boot":
            added = verdict.taint_findings(phase, self.taint, taint)
            self.result.findings += added
            bad += added
        self.taint = taint
        self.result.taint = verdict.taint_record(taint)
        return bad

    def check_health(self, phase: str, timeout: float, modules=(), listed: bool | None = None,
                     before: str = "") -> None:
        """The health look that ends a phase: a kernel report, a hang or a dead guest fails it; so
        does a module that insmod/rmmod said it loaded/unloaded but /proc/modules disagrees.
        ``before``: a guest command run first, in the same guest command (``udevadm settle``)."""
        try:
            bad = self.look(phase, timeout, f"{before}; {agent.HEALTH_CMD}" if before else agent.HEALTH_CMD)
        except GuestError as e:
            raise self.trouble(phase, e, f"the health check after {phase}") from None
        if bad:
            raise self.fail(phase, verdict.reported(bad[0]))
        kunit = verdict.kunit_failure(self.result.kunit, phase)
        if kunit:
            raise self.fail(phase, kunit)
        for name in modules:
            if (name in self.listed) != listed:
                tool = "insmod" if listed else "rmmod"
                raise self.fail(phase, f"{name} is {'not ' if listed else 'still '}listed in /proc/modules "
                                       f"after {tool}")

    def trouble(self, phase: str, e: GuestError, what: str) -> ModuleFailure:
        """A hang, a panic or a dead QEMU while the module was in the kernel: the module's fault.
        Gathers what the guest can still tell (the module's state and sysrq backtraces over the
        console); the verdict module says what it means."""
        g = self.guest
        if g is not None and not isinstance(g, ConsoleSideChannel) and hasattr(g, "reachable"):
            return self._board_trouble(phase, e, what)   # a board over SSH: no console, no QEMU
        stuck = isinstance(e, CommandTimeout) and g is not None
        if stuck:
            lost = verdict.channel_lost(what, self._module_state(what))
            if lost is not None:
                # Not a hang: the module silenced the channel the harness talks to the guest on.
                text = g.console_text(32768)
                self.result.phase(phase).log = cap(text)
                self.result.findings.append(verdict.channel_lost_finding(lost, text, what, phase))
                return self.fail(phase, lost)
            # What the kernel printed while the step ran (a soft lockup report, a WARN before
            # the hang), then what every CPU and blocked task is doing.
            during = g.console_since(self._step_mark) if isinstance(g, ConsoleSideChannel) else ""
            text = during + g.sysrq("lw", settle=2.0)
        else:
            text = e.console_tail
        self.result.phase(phase).log = cap(text)
        found = self.findings(phase, text)
        message, extra = verdict.guest_trouble(e, what, phase, text, found, asked_sysrq=stuck)
        self.result.findings += extra
        return self.fail(phase, message)

    def _board_trouble(self, phase: str, e: GuestError, what: str) -> ModuleFailure:
        """A board that stopped answering during a step: if sshd no longer answers either, the
        kernel most likely panicked or hung (the board is never rebooted by kharness: someone
        has to). The last kernel messages that reached us are the evidence."""
        g = self.guest
        alive = g.reachable(BOARD_REACH_TIMEOUT)
        after = time.monotonic() - getattr(self, "_step_started", time.monotonic())
        text = g.console_text(32768)
        self.result.phase(phase).log = cap(text)
        found = self.findings(phase, text)
        cmd = verdict.module_command(what)
        step = cmd[0] if cmd else what
        if not alive:
            msg = f"unreachable {after:.0f} s after {step}: likely panic or hang"
            if found:
                msg += f" ({found[0].kind}: {found[0].summary})"
            self.result.findings.append(Finding(FindingKind.HANG, msg, cap(text, 65536), 0, phase=phase, blocking=True))
            return self.fail(phase, msg)
        message, extra = verdict.guest_trouble(e, what, phase, text, found, asked_sysrq=isinstance(e, CommandTimeout))
        self.result.findings += extra
        return self.fail(phase, message)

    def _module_state(self, what: str) -> str | None:
        cmd = verdict.module_command(what)
        if cmd is None or not isinstance(self.guest, ConsoleSideChannel):   # no second way in
            return None
        return self.guest.module_state(cmd[1])
