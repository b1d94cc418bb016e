"""One run's pipeline: build -> image -> boot -> load -> check -> unload, and its verdict.

Every way out of a run produces a :class:`Result`. Usage and infrastructure problems give
``status = "error"``; anything the module did (a build error, a failed insmod or check, a kernel
oops/WARN/panic/taint, a hang) gives ``status = "fail"``. The guest is torn down on every path.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from kharness import agent_client as agent
from kharness import checks, health, seal, ui
# kh-agent's commands and reply parsers live in agent_client (docs/protocol.md); HEALTH_SEP and
# SESSION_CURSOR stay importable from here for existing callers.
from kharness.agent_client import HEALTH_CMD, HEALTH_SEP, LOAD_MARK, SESSION_CURSOR  # noqa: F401
from kharness.build.kbuild import BuildOutcome, BuiltModule, run_kbuild
from kharness.build.makefile import plan_build
from kharness.build.toolchain import pick_toolchain
from kharness.cachectl import reap_abandoned_staging
from kharness.errors import DamagedCacheEntry, InfraError, KharnessError, ModuleFailure, UsageError
from kharness.hw import gpio as khgpio
from kharness.image.initramfs import write_run_initrd
from kharness.kernels import debug as debugk
from kharness.kernels.resolve import KernelSpec
from kharness.kernels.source import SourceBuild
from kharness.kernels.store import ensure_headers
from kharness.modconfig import ModuleConfig, load_config, merge_params, parse_cli_params
from kharness.plan import insmod_order, plan_guest
from kharness.result.cap import REPORT_CAP
from kharness.result.finding import Finding, FindingKind
from kharness.result.model import CheckResult, Result, cap
from kharness.result.records import BuildRecord, ImageRecord, KernelRecord, TaintRecord
from kharness.targets import TargetProfile, get_target
from kharness.vm.accel import ACCELS, choose_accel
from kharness.vm.errors import BootTimeout, CommandTimeout, GuestDied, GuestError, QemuStartError
from kharness.vm import snapshot
from kharness.guest import ConsoleSideChannel
from kharness.vm.machine import Guest
from kharness.vm.qemu import BootSpec, qemu_binary, reproducer

DEFAULT_TIMEOUT = 60.0        # per guest step (an insmod, a check, an rmmod)
DEFAULT_BOOT_TIMEOUT = 300.0  # TCG on a loaded 2-core machine can be slow; a healthy boot is ~3 s
_MODULE_FRAME_RE = re.compile(r"(\w+\+0x[0-9a-f]+/0x[0-9a-f]+) \[(\w+)\]")
# What a restored guest runs first; tests/integration/test_snapshot.py patches it to stall a restore.
RESTORED_CMD = agent.RESTORED_CMD


def host_load() -> tuple[float, int]:
    """The host's 1-minute load average and the CPUs this process may run on ((0.0, 1) if unknown)."""
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return 0.0, 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return busy, max(cpus, 1)


def restore_limit(boot_timeout: float, load: tuple[float, int] | None = None) -> tuple[float, str]:
    """How long a restored guest's first command (its timer probe, with the first part of the
    module delivery) may take, and how that was reckoned (said in the result when a restore is
    abandoned).

    ``snapshot.PROBE_TIMEOUT`` is the limit at the default --boot-timeout on an idle host. It
    grows with a longer --boot-timeout (who allows a slow boot allows a slow restore) and with
    the host's load per CPU above 1 (TCG guests share the CPUs: four guests on two cores each run
    at half speed, and a healthy restore then misses a fixed limit and boots cold), and never
    exceeds --boot-timeout itself. A guest whose timers stalled never answers, however long.
    """
    base = snapshot.PROBE_TIMEOUT
    why = [f"{base:g}s"]
    scale = max(1.0, boot_timeout / DEFAULT_BOOT_TIMEOUT)
    if scale > 1:
        why.append(f"x{scale:.3g} for --boot-timeout {boot_timeout:g}s")
    busy, cpus = host_load() if load is None else load
    per_cpu = busy / max(cpus, 1)
    if per_cpu > 1:
        why.append(f"x{per_cpu:.3g} for the host's load {busy:.2f} on {cpus} CPU(s)")
        scale *= per_cpu
    limit = base * scale
    if limit > boot_timeout:
        limit = boot_timeout
        why.append(f"capped at --boot-timeout {boot_timeout:g}s")
    limit = round(limit, 1)
    return limit, f"{limit:g}s = " + ", ".join(why)


@dataclass
class RunOptions:
    module_dir: Path
    target: str = "x86_64"
    kernel: str | None = None
    params: list[str] = field(default_factory=list)
    timeout: float | None = None
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT
    accel: str = "auto"
    keep: bool = False
    kernel_tree: Path | None = None          # build the kernel from this source tree instead
    kernel_config: list[Path] = field(default_factory=list)  # extra config fragments for it
    cold: bool = False                       # always boot; never restore a snapshot
    debug: tuple[str, ...] | str = ()        # debug checkers ("kasan,ubsan" or a tuple): boot a kernel built with them


def _reproducer_cmd(opts: RunOptions, release: str | None) -> str:
    argv = ["kharness", "run", str(opts.module_dir), "--target", opts.target]
    if release or opts.kernel:
        argv += ["--kernel", release or opts.kernel]
    for p in opts.params:
        argv += ["--param", p]
    if opts.debug:
        argv += ["--debug", opts.debug if isinstance(opts.debug, str) else ",".join(opts.debug)]
    if opts.timeout:
        argv += ["--timeout", f"{opts.timeout:g}"]
    if opts.kernel_tree:
        argv += ["--kernel-tree", str(opts.kernel_tree)]
        for c in opts.kernel_config:
            argv += ["--kernel-config", str(c)]
    return shlex.join(argv)


def _insmod_args(params: dict[str, str]) -> list[str]:
    # busybox insmod joins its argv with spaces and the kernel's parameter parser splits them
    # again (honouring double quotes): each argument is quoted for that parser, and a value it
    # cannot take is refused. The shell between (shlex.join) keeps each argument whole.
    from kharness.modconfig import insmod_arg
    return [insmod_arg(k, v) for k, v in params.items()]


RUN_DIR_PREFIX = "kharness-run-"
KEEP_MARKER = "KEPT"


def _reap_stale_run_dirs() -> None:
    """Remove run directories whose kharness process died without cleaning up (SIGKILL, power
    loss). A directory names its owner's pid; one kept with --keep is left alone."""
    for d in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*-*"):
        try:
            pid = int(d.name[len(RUN_DIR_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if (d / KEEP_MARKER).exists() or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            continue


class Run:
    """State of one run while it executes; ``execute()`` returns the finished Result."""

    def __init__(self, opts: RunOptions, guest_factory=None):
        self.opts = opts
        # Makes the guest: called as Guest(profile, boot, workdir, accel[, extra_args]); None is
        # the QEMU guest (looked up at call time). A fake guest judges verdicts without QEMU.
        self._guest_factory = guest_factory
        self.result = Result(module_dir=str(opts.module_dir), target=opts.target,
                             kernel_wanted=opts.kernel or "default")
        self.guest: Guest | None = None
        self.workdir: Path | None = None
        self.taint = 0
        self.shadow_map: tuple[str, str] | None = None
        self.profile: TargetProfile | None = None
        self.khgpio: BuiltModule | None = None
        self.values: dict[str, str] = {}      # what {placeholders} in params and checks resolve to
        self.devices_at_boot: dict[str, str] = {}
        self.char_devices: dict[str, str] = {}    # {name: major}, as of the last health look
        self.listed: set[str] = set()              # modules in /proc/modules, as of the last look
        self.boot_log = ""                         # a restored guest's boot log, saved with its snapshot
        self._first_look = None                    # the health look a restored guest's setup took
        self._restore_at = ("", "")                # (the step a restore is at, its limit), for the result
        self.tested: set[str] = set()              # the modules under test (not khgpio)
        self.modules: list[BuiltModule] = []
        self.config: ModuleConfig | None = None
        self.step_timeout = DEFAULT_TIMEOUT
        self.debug: tuple[str, ...] = ()       # the debug kernel's checkers, if it is one
        self.module_maps: list = []            # where the modules were loaded (kmemleak attribution)
        self._last_module_change = 0.0         # when the last insmod/rmmod returned

    # -- helpers ------------------------------------------------------------------------------
    def _fail(self, phase: str, message: str, guest_usable: bool = False) -> ModuleFailure:
        p = self.result.phase(phase)
        p.status = "fail"
        p.message = p.message or message
        return ModuleFailure(phase, message, guest_usable)

    def _findings(self, phase: str, text: str, baseline: bool = False) -> list[Finding]:
        found = health.scan_kernel_log(text)
        if self.shadow_map:
            # Reports name the build tree's paths: show the user's own.
            a, b = self.shadow_map
            found = [dataclasses.replace(f, summary=f.summary.replace(a, b), report=f.report.replace(a, b))
                     for f in found]
        # Some reports count only when the module under test is the one they blame.
        found = [dataclasses.replace(f, phase=phase, blocking=not baseline and (
                     f.kind not in health.BLAMED_ONLY or f.module in self.tested)) for f in found]
        self.result.findings += found
        return [f for f in found if f.blocking]

    def _health(self, phase: str, timeout: float, command: str = HEALTH_CMD) -> list[Finding]:
        """Taint and the kernel log since the last look; findings that fail the run."""
        assert self.guest
        r, self._first_look = self._first_look, None   # a restored guest's look came with its setup
        if r is None:
            r = self.guest.run(command, timeout)
        look = agent.parse_health(r.stdout)
        taint = self.taint if look.taint is None else look.taint
        log = look.log
        self.listed = set(look.modules)
        self.char_devices = dict(look.char_devices)
        if phase == "boot" and self.boot_log:
            log = self.boot_log + log
        self.result.dmesg[phase] = self.result.dmesg.get(phase, "") + log
        blocking = self._findings(phase, log, baseline=(phase == "boot"))
        if phase != "boot":
            for f in health.taint_findings(self.taint, taint):
                f = dataclasses.replace(f, phase=phase, blocking=True)
                self.result.findings.append(f)
                blocking.append(f)
        self.taint = taint
        self.result.taint = TaintRecord(taint, health.taint_string(taint),
                                        [f"{t.letter}: {t.description}" for t in health.decode_taint(taint)])
        return blocking

    def _check_health(self, phase: str, timeout: float, modules=(), listed: bool | None = None) -> None:
        """The health look that ends a phase: a kernel report, a hang or a dead guest fails it; so
        does a module that insmod/rmmod said it loaded/unloaded but /proc/modules disagrees."""
        try:
            bad = self._health(phase, timeout)
        except GuestError as e:
            raise self._guest_trouble(phase, e, f"the health check after {phase}") from None
        if bad:
            f = bad[0]
            raise self._fail(phase, f"kernel reported {f.kind}: {f.summary}")
        for name in modules:
            if (name in self.listed) != listed:
                tool = "insmod" if listed else "rmmod"
                raise self._fail(phase, f"{name} is {'not ' if listed else 'still '}listed in /proc/modules "
                                        f"after {tool}")

    def _guest_trouble(self, phase: str, e: GuestError, what: str) -> ModuleFailure:
        """A hang, a panic or a dead QEMU while the module was in the kernel: the module's fault."""
        text = e.console_tail
        lost = self._channel_lost(what) if isinstance(e, CommandTimeout) and self.guest is not None else None
        if lost is not None:
            # Not a hang: the module silenced the channel the harness talks to the guest on.
            text = self.guest.console_text(32768)
            self.result.phase(phase).log = cap(text)
            self.result.findings.append(Finding(FindingKind.CHANNEL_LOST, lost, cap(text, REPORT_CAP), 0,
                                                module=what.split()[-1], phase=phase, blocking=True))
            return self._fail(phase, lost)
        if isinstance(e, CommandTimeout) and self.guest is not None:
            # Ask the kernel what every CPU and blocked task is doing.
            text = self.guest.sysrq("lw", settle=2.0)
            msg = f"{what} did not return within its timeout (hang)"
        elif isinstance(e, GuestDied) and e.panic:
            msg = f"kernel panic during {what}"
        else:
            msg = f"guest stopped during {what}: {e.message}"
        self.result.phase(phase).log = cap(text)
        found = self._findings(phase, text)
        if isinstance(e, CommandTimeout):
            frame = _MODULE_FRAME_RE.search(text.split("Show Blocked State", 1)[-1]) or _MODULE_FRAME_RE.search(text)
            if frame:
                msg += f", stuck in {frame.group(1)} [{frame.group(2)}]"
            self.result.findings.append(Finding(FindingKind.HANG, msg, cap(text, REPORT_CAP), 0,
                                                phase=phase, blocking=True))
        elif found and not (isinstance(e, GuestDied) and e.panic):
            msg += f" ({found[0].kind}: {found[0].summary})"
        if isinstance(e, GuestDied) and e.panic:
            pf = next((f for f in found if f.kind == FindingKind.PANIC), None)
            if pf:
                msg = f"kernel panic during {what}: {pf.summary}"
        return self._fail(phase, msg)

    def _channel_lost(self, what: str) -> str | None:
        """After an insmod/rmmod that did not answer: if the console says the module's init (or
        exit) finished, the command finished too and it is the command channel that went silent."""
        m = re.fullmatch(r"(insmod|rmmod) (\w+)", what)
        if m is None or not isinstance(self.guest, ConsoleSideChannel):   # no second way in
            return None
        tool, name = m.groups()
        state = self.guest.module_state(name)
        if (tool, state) in (("insmod", "live"), ("rmmod", "gone")):
            done = "its init returned" if tool == "insmod" else "it was unloaded"
            return (f"the command channel went silent during {what}: {done} (the guest still answers on "
                    f"the console) but no answer came back; the module broke the harness's channel")
        return None

    # -- phases ----------------------------------------------------------------------------------
    def execute(self) -> Result:
        start = time.monotonic()
        try:
            with ExitStack() as stack:
                stack.callback(self._teardown)
                self._pipeline()
            self.settle(None)
        except (ModuleFailure, KharnessError) as e:
            self.settle(e)
        except Exception as e:   # unforeseen (a bug, a host failure): an infrastructure error, not a crash
            from kharness.unexpected import InternalError

            internal = InternalError(e)
            self.settle(internal)
            self.result.traceback = internal.traceback
        finally:
            self.result.duration = time.monotonic() - start
        return self.result

    def settle(self, e: BaseException | None) -> None:
        """The verdict: pass, a module failure (``fail``) or a usage/infrastructure error."""
        r = self.result
        if e is None:
            r.status = "pass"
            r.summary = "built, loaded, checked and unloaded cleanly"
        elif isinstance(e, ModuleFailure):
            r.status = "fail"
            r.summary = f"{e.phase}: {e.message}"
        elif isinstance(e, KharnessError):
            r.status = "error"
            r.error = {"kind": e.kind, "message": str(e)}
            r.summary = str(e)
            for p in r.phases:
                if p.status == "running":
                    p.message = str(e)
        for p in r.phases:
            if p.status == "running":
                p.status = "error"

    def _teardown(self) -> None:
        if self.guest is not None:
            self.guest.close()
            self.result.artifacts["console_log_tail"] = cap(self.guest.console_text(32768))
        if self.workdir is not None:
            if self.opts.keep:
                (self.workdir / KEEP_MARKER).touch()
                self.result.artifacts["run_dir"] = str(self.workdir)
                ui.info(f"[dim]kept the run directory {self.workdir}[/dim]")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _pipeline(self) -> None:
        self.up()
        try:
            self._checks(self.config, self.modules, self.step_timeout)
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

    def down(self) -> None:
        """Unload the module(s) and look at the kernel's health. The guest is then simply stopped
        (teardown kills QEMU): it holds nothing to save, and a poweroff costs time."""
        self._unload(self.modules, self.config, self.step_timeout)

    def up(self) -> None:
        """Build, make the image, boot and load: the guest is ready for checks (or a Session)."""
        opts, r = self.opts, self.result
        d = opts.module_dir
        if not d.exists():
            raise UsageError(f"module directory {d} does not exist")
        if not d.is_dir():
            raise UsageError(f"{d} is not a directory", hint="give the directory that holds the module's sources")
        if opts.accel not in ACCELS:
            raise UsageError(f"unknown accelerator {opts.accel!r}", hint="use auto, kvm or tcg")
        profile = self.profile = get_target(opts.target)
        reap_abandoned_staging()   # what a SIGKILLed kharness was making when it died
        qemu_binary(profile)  # a missing QEMU is an error before any work, not after a build
        config = load_config(d)
        cli_params = parse_cli_params(opts.params)
        plan = plan_build(d, name=config.name, sources=list(config.sources) or None,
                          ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
        timeout = opts.timeout or config.timeout or DEFAULT_TIMEOUT
        params = merge_params(config.params, cli_params)
        # Placeholders and per-target encodings are judged now, not after a build and a boot.
        extra = {f"parameter {(m + '.') if m else ''}{k}": v for m, kv in params.items() for k, v in kv.items()}
        extra.update({f"[{ph}] expect_dmesg": rx for ph, rx in
                      (("load", config.load_expect_dmesg), ("unload", config.unload_expect_dmesg)) if rx})
        checks.validate_for_run(config.path or d / "kharness.toml", config.checks, profile,
                                params={k for kv in params.values() for k in kv},
                                gpio_lines=config.gpio.lines if config.gpio is not None else None,
                                extra_texts=extra,
                                param_values={k: v for kv in params.values() for k, v in kv.items()})
        guest_plan = plan_guest(profile, opts.kernel, opts.debug, opts.kernel_tree, opts.kernel_config, opts.accel)
        profile = self.profile = guest_plan.profile   # (a debug guest's memory applied)
        debug = self.debug = guest_plan.debug
        built_kernel: SourceBuild | None = None
        from_debian = guest_plan.from_debian
        if from_debian:
            spec, _ = guest_plan.resolve()
            r.kernel = KernelRecord(**spec.to_dict())
            r.reproducer["kharness"] = _reproducer_cmd(opts, spec.release)

        # build (for self-built kernels the kernel too, the first time)
        ph = r.phase("build")
        ph.status = "running"
        t = time.monotonic()
        if from_debian:
            headers = ensure_headers(spec)
        else:
            spec, built_kernel = guest_plan.resolve()
            headers = built_kernel.headers_bundle()
            r.kernel = KernelRecord(**spec.to_dict(), built_from=built_kernel.origin,
                                    config_fragments=list(built_kernel.config_fragments),
                                    build_tree=str(built_kernel.out))
            if debug:
                r.kernel.debug = list(debug)
                r.kernel.build_seconds = built_kernel.build_seconds
            r.reproducer["kharness"] = _reproducer_cmd(opts, None)
        tc = pick_toolchain(profile, spec)
        r.compiler = tc.version + (f" ({tc.note})" if tc.note else "")
        try:
            outcome = run_kbuild(plan, headers, tc)
        except DamagedCacheEntry as e:
            # Headers altered on disk since they were unpacked: unpack (or build) them again.
            ui.info(f"[yellow]{e.message}: making it again[/yellow]")
            seal.discard(e.entry)
            if from_debian:
                headers = ensure_headers(spec)
            else:
                spec, built_kernel = guest_plan.resolve()
                headers = built_kernel.headers_bundle()
            outcome = run_kbuild(plan, headers, tc)
        ph.duration = time.monotonic() - t
        self._record_build(outcome)
        if tc.sysroot is not None:
            r.build.environment = seal.read_meta(tc.sysroot)   # what apt installed there
        if outcome.modules:
            self.shadow_map = (str(outcome.modules[0].path.parent), str(d.resolve()))
        if not outcome.ok:
            ph.log = cap(outcome.log)
            raise self._fail("build", outcome.error)
        for m in outcome.modules:
            if m.vermagic.split(" ")[0] != spec.release:
                raise self._fail("build", f"{m.name}.ko has vermagic {m.vermagic.strip()!r}, "
                                          f"the target kernel is {spec.release}")
        ph.status = "pass"
        ph.message = ("reused the cached build" if outcome.cached else f"{len(outcome.modules)} module(s)") + \
            (f", {sum(1 for x in outcome.diagnostics if x.severity == 'warning')} warning(s)"
             if any(x.severity == "warning" for x in outcome.diagnostics) else "")
        if config.gpio is not None:
            self.khgpio = self._build_khgpio(headers, tc)
        modules = insmod_order(outcome.modules, config)
        per_module = self._params_for(modules, params)
        r.params = per_module

        # image
        ph = r.phase("image")
        ph.status = "running"
        t = time.monotonic()
        kernel, base, dtb = guest_plan.image(spec, built_kernel)
        _reap_stale_run_dirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))
        payload = {f"{m.name}.ko": m.path.read_bytes() for m in modules}
        if self.khgpio is not None:
            payload[f"{khgpio.MODULE}.ko"] = self.khgpio.path.read_bytes()
        boot = BootSpec(kernel.kernel, base.path, dtb)
        r.image = ImageRecord(base=str(base.path), key=base.key, busybox=base.busybox, kernel=str(kernel.kernel))
        ph.duration = time.monotonic() - t
        ph.status = "pass"

        # boot: restore the ready snapshot where there is one, else boot
        ph = r.phase("boot")
        ph.status = "running"
        t = time.monotonic()
        accel, note = choose_accel(profile, opts.accel, boot)
        r.accelerator, r.accelerator_note = accel, note
        snap = self._snapshot(profile, boot, accel, opts)
        try:
            if snap is not None and not self._restore(snap, boot, payload, spec, timeout):
                snap = None   # the restored guest did not work: boot one instead
            if snap is None:
                boot = BootSpec(kernel.kernel, write_run_initrd(base, payload, self.workdir / "initrd.img"), dtb)
                self.guest = self._new_guest(profile, boot, self.workdir, accel)
                r.reproducer["qemu"] = reproducer(self.guest.argv)
                self.guest.start()
                with ui.step(f"booting {spec.release} on {profile.name} ({accel})"):
                    self.guest.wait_ready(opts.boot_timeout)
            # ";": the health look runs even if a cursor could not be moved.
            self._health("boot", timeout, agent.boot_look())
            self.devices_at_boot = dict(self.char_devices)
        except (QemuStartError, BootTimeout, GuestDied, CommandTimeout) as e:
            ph.log = cap(e.console_tail)
            raise InfraError(f"the guest did not boot: {e.message}",
                             hint="see the console log in the JSON result (phase boot)") from None
        ph.duration = time.monotonic() - t
        ph.status = "pass"
        ph.message = (f"ready in {self.guest.boot_seconds:.1f}s" if snap is None else
                      f"restored from snapshot in {self.guest.boot_seconds:.2f}s")
        if snap is None and r.boot_mode_note.startswith("restoring"):
            ph.message += f" ({r.boot_mode_note})"
        self.tested = {m.name for m in modules}
        self._load(modules, per_module, config, timeout)
        self.modules, self.config, self.step_timeout = modules, config, timeout

    def _snapshot(self, profile: TargetProfile, boot: BootSpec, accel: str, opts: RunOptions):
        """The ready snapshot to restore, or None for a cold boot (with the reason in the result)."""
        r = self.result
        if opts.cold or not profile.snapshot:
            r.boot_mode = "cold"
            r.boot_mode_note = "--cold" if opts.cold else f"{profile.name} does not support snapshots"
            return None
        try:
            snap = snapshot.ensure(profile, boot, accel, opts.boot_timeout, prepare=agent.health())
        except InfraError as e:
            r.boot_mode, r.boot_mode_note = "cold", f"no snapshot: {e}"
            ui.info(f"[yellow]no snapshot ({e}); booting cold[/yellow]")
            return None
        r.boot_mode, r.boot_mode_note = "snapshot", f"restored {snap.key}"
        # The first health look ran before the save: keep the boot log it read, and the restored
        # guest's first look returns only what happened since the restore.
        self.boot_log = agent.parse_health(snap.prepared).log
        if r.image is not None:
            r.image.snapshot = str(snap.path)
        return snap

    def _restore(self, snap, boot: BootSpec, payload: dict[str, bytes], spec: KernelSpec, timeout: float) -> bool:
        """Start the guest from its ready snapshot and hand it this run's modules. False (the
        guest torn down, the reason in the result) when the restored guest does not work: the
        caller boots one instead. Nothing of the module has run yet, so this is never its fault."""
        profile, r = self.profile, self.result
        copy = self.workdir / "vmstate.qcow2"
        shutil.copyfile(snap.path, copy)
        self.guest = self._new_guest(profile, boot, self.workdir, r.accelerator, snap.restore_args(copy))
        r.reproducer["qemu"] = reproducer(self.guest.argv)
        boot_limit = f"--boot-timeout {self.opts.boot_timeout:g}s"
        try:
            self._restore_at = ("starting QEMU", boot_limit)
            self.guest.start()
            with ui.step(f"restoring {spec.release} on {profile.name} from its snapshot ({r.accelerator})"):
                self._restore_at = ("the restored guest's first answer", boot_limit)
                self.guest.wait_restored(self.opts.boot_timeout, snap.release)
                self._first_look = self._after_restore(payload, profile, timeout)
            return True
        except (QemuStartError, BootTimeout, GuestDied, CommandTimeout, InfraError) as e:
            step, limit = self._restore_at
            why = f"at {step}: {getattr(e, 'message', str(e))}; limit {limit}"
            ui.info(f"[yellow]the restored guest did not work ({why}); booting instead[/yellow]")
            r.boot_mode, r.boot_mode_note = "cold", f"restoring {snap.key} abandoned ({why}); booted instead"
            snapshot.discard(snap)   # saved in a bad moment: the next run saves a new one
            if r.image is not None:
                r.image.snapshot = None
            self.boot_log = ""
            self._first_look = None
            self.guest.close()
            self.guest = None
            return False

    def _after_restore(self, payload: dict[str, bytes], profile: TargetProfile, timeout: float):
        """A restored guest is the saved one: check that its timers run, give it the host's clock,
        fresh randomness, and this run's modules (debug info stripped), then take the first health
        look; in as few guest commands as the line length allows (usually one: each command costs
        tens of milliseconds under TCG). Returns the result of the command that took the look."""
        seed = os.urandom(32).hex()
        steps = [agent.restored(int(time.time()), seed, template=RESTORED_CMD)]
        for name, data in payload.items():
            steps += agent.delivery_commands(name, _strip_debug(data, profile))
        batches, size = [[]], 0
        for step in steps:
            if batches[-1] and size + len(step) > agent.CHUNK:
                batches.append([])
                size = 0
            batches[-1].append(step)
            size += len(step) + 4
        batches[-1] += [LOAD_MARK, agent.health()]
        probe_limit, reckoning = restore_limit(self.opts.boot_timeout)
        for i, batch in enumerate(batches):
            # The first command carries the timer probe: a guest that cannot answer it is broken.
            what = (f"setup command {i + 1} of {len(batches)} "
                    f"({'timer probe, module delivery' if i == 0 else 'module delivery'})")
            limit = probe_limit if i == 0 else timeout
            self._restore_at = (what, reckoning if i == 0 else f"the step timeout {timeout:g}s")
            res = self.guest.run(" && ".join(batch), limit)
            if res.rc != 0:
                raise InfraError(f"the restored guest could not be set up: {res.stderr.strip()[:200] or res.rc}")
        return res

    def _build_khgpio(self, headers, tc) -> BuiltModule:
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
        self.result.build.khgpio = {"cached": o.cached, "directory": str(o.build_dir)}
        return o.modules[0]

    def _load_khgpio(self, config: ModuleConfig, timeout: float) -> None:
        """insmod khgpio before the module under test; {gpio.base} and {gpio.N} from its base."""
        argv = config.gpio.insmod_argv(f"/kh/{khgpio.MODULE}.ko")
        res = self._run_step("load", agent.khgpio_load(argv), timeout, "insmod khgpio")
        self.result.phase("load").log += f"$ {shlex.join(argv)}\n{res.stdout}{res.stderr}"
        try:
            base = agent.parse_khgpio_base(res.stdout)
        except (ValueError, IndexError):
            why = (res.stderr or res.stdout).strip() or f"exit {res.rc}"
            hint = ("another GPIO controller may use that range: try [gpio] base = \"auto\""
                    if config.gpio.base is not None else None)
            raise InfraError(f"the kharness virtual GPIO controller did not load: {why}", hint=hint)
        self.values.update(khgpio.values(base, config.gpio.lines))
        self.result.gpio = {"controller": khgpio.MODULE, "base": base, "lines": config.gpio.lines}

    def _record_build(self, o: BuildOutcome) -> None:
        self.result.build = BuildRecord(
            cached=o.cached, command=shlex.join(o.command), directory=str(o.build_dir),
            generated_makefile=o.makefile, compiler=o.compiler, diagnostics=[d.to_dict() for d in o.diagnostics])
        self.result.modules = [m.to_dict() for m in o.modules]

    @staticmethod
    def _params_for(mods: list[BuiltModule], params: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
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

    def _new_guest(self, *args) -> Guest:
        return (self._guest_factory or Guest)(*args)

    def _run_step(self, phase: str, command: str, timeout: float, what: str):
        assert self.guest
        try:
            return self.guest.run(command, timeout)
        except GuestError as e:
            raise self._guest_trouble(phase, e, what) from None

    def _module_command(self, phase: str, name: str, argv: list[str], timeout: float) -> None:
        """insmod/rmmod one module; a failure is explained by the kernel's report when it has one.
        (Whether /proc/modules agrees is read by the health look that ends the phase.)"""
        tool = argv[0]
        cmd = shlex.join(argv)
        res = self._run_step(phase, cmd, timeout, f"{tool} {name}")
        self.result.phase(phase).log += f"$ {cmd}\n{res.stdout}{res.stderr}"
        if res.rc != 0:
            try:
                bad = self._health(phase, timeout)
            except GuestError:
                bad = []
            why = (res.stderr or res.stdout).strip() or "no message"
            if bad:
                raise self._fail(phase, f"kernel reported {bad[0].kind} during {tool} {name}: "
                                        f"{bad[0].summary} ({tool}: {why})")
            raise self._fail(phase, f"{tool} {name} failed (exit {res.rc}): {why}")
        self._last_module_change = time.monotonic()

    def _expect_dmesg(self, phase: str, regex: str | None, modules) -> None:
        """``[load]``/``[unload]`` ``expect_dmesg``: a regex ({module}, {param.NAME}... substituted)
        the kernel log of the phase must match."""
        if not regex:
            return
        values = dict(self.values, **checks.values_for([m.name for m in modules], self.result.params))
        # A placeholder's value is matched literally (re.escape): "1.5" must not match "175".
        rx = checks.compile_regex(regex, values, f"[{phase}] expect_dmesg")
        if not rx.search(self.result.dmesg.get(phase, "")):
            raise self._fail(phase, f"kernel log did not match expect_dmesg {rx.pattern!r}")

    def _load(self, modules, per_module, config: ModuleConfig, timeout: float) -> None:
        ph = self.result.phase("load")
        ph.status = "running"
        t = time.monotonic()
        try:
            self.values.update(checks.values_for([m.name for m in modules], {}))
            if config.gpio is not None:
                self._load_khgpio(config, timeout)
            for m in modules:
                # Parameters may name resolved values: button_gpio = "{gpio.17}".
                per_module[m.name] = {k: checks.substitute(v, self.values, f"parameter {m.name}.{k}")
                                      for k, v in per_module[m.name].items()}
                argv = ["insmod", f"/kh/{m.name}.ko", *_insmod_args(per_module[m.name])]
                self._module_command("load", m.name, argv, timeout)
                if "kmemleak" in self.debug:
                    self._map_module(m, timeout)
            loaded = [m.name for m in modules] + ([khgpio.MODULE] if config.gpio is not None else [])
            self._check_health("load", timeout, loaded, listed=True)
            self._expect_dmesg("load", config.load_expect_dmesg, modules)
            self._resolve_majors()
        finally:
            ph.duration = time.monotonic() - t
        ph.status = "pass"
        ph.message = ", ".join(m.name for m in modules)

    def _resolve_majors(self) -> None:
        """{major.NAME} for every character device; {major} for the one the module added (both
        from /proc/devices as the health look after loading read it)."""
        now = self.char_devices
        self.values.update({f"major.{n}": m for n, m in now.items()})
        new = {n: m for n, m in now.items() if n not in self.devices_at_boot}
        if len(new) == 1:
            self.values["major"] = next(iter(new.values()))
        elif self.values.get("module") in now:
            self.values["major"] = now[self.values["module"]]

    def run_check(self, c: checks.BaseCheck, values: dict[str, str], timeout: float) -> CheckResult:
        """One check (all its repetitions) in the guest; a hang or a dead guest raises ModuleFailure."""
        cr = None
        for i in range(c.repeat):
            cmd = checks.command_for(c, values, self.profile)
            res = self._run_step("check", cmd, c.timeout or timeout, f"check {c.name!r}")
            problems = checks.judge(c, res.rc, res.stdout, res.stderr, values, self.profile)
            if problems and c.repeat > 1:
                problems = [f"repetition {i + 1} of {c.repeat}: {p}" for p in problems]
            cr = CheckResult(name=c.name, command=cmd.removeprefix(checks.STEP_CURSOR),
                             status="fail" if problems else "pass", rc=res.rc, expect_rc=c.expect_rc,
                             stdout=res.stdout, stderr=res.stderr, duration=res.duration,
                             message="; ".join(problems))
            if problems:
                break
        return cr

    def _checks(self, config: ModuleConfig, modules, timeout: float) -> None:
        ph = self.result.phase("check")
        ph.status = "running"
        t = time.monotonic()
        failed = []
        try:
            values = dict(self.values, **checks.values_for([m.name for m in modules], self.result.params))
            for c in config.checks:
                if c.targets and self.profile.name not in c.targets:
                    self.result.checks.append(CheckResult(name=c.name, command="", status="skipped", rc=None,
                                                          expect_rc=c.expect_rc,
                                                          message=f"only for {', '.join(c.targets)}"))
                    continue
                cr = self.run_check(c, values, timeout)
                self.result.checks.append(cr)
                if cr.status == "fail":
                    failed.append(cr)
            self._check_health("check", timeout)
        finally:
            ph.duration = time.monotonic() - t
        if failed:
            raise self._fail("check", f"{len(failed)} of {len(config.checks)} check(s) failed: "
                                      f"{failed[0].name}: {failed[0].message}", guest_usable=True)
        ph.status = "pass"
        skipped = sum(1 for c in self.result.checks if c.status == "skipped")
        ph.message = (f"{len(config.checks) - skipped} check(s) passed" + (f", {skipped} skipped" if skipped else "")
                      if config.checks else "no checks defined")

    def _map_module(self, m: BuiltModule, timeout: float) -> None:
        """Where the kernel put the module's sections: once it is unloaded, kmemleak can only
        print raw addresses, and this turns them back into the module's functions."""
        sec = f"/sys/module/{m.name}/sections"
        res = self._run_step("load", f"grep -H . {sec}/.[!.]* {sec}/* 2>/dev/null", timeout, "reading module sections")
        try:
            self.module_maps.append(debugk.module_map(m.name, m.path, res.stdout))
        except Exception as e:   # an unreadable .ko only costs the symbol names
            ui.info(f"[yellow]cannot map {m.name}'s sections for kmemleak: {e}[/yellow]")

    def _kmemleak_scan(self, modules, timeout: float) -> None:
        """After rmmod: a kmemleak scan; the records whose allocation stack runs through a tested
        module fail the run, the kernel's own leaks are kept as non-blocking findings."""
        first, second = debugk.kmemleak_scan_commands(0)
        self._run_step("unload", first, max(timeout, 120.0), "the kmemleak scan")
        # Allocations younger than kmemleak's minimum age are not reported yet: wait them out.
        wait = debugk.KMEMLEAK_MIN_AGE + 0.5 - (time.monotonic() - self._last_module_change)
        first, second = debugk.kmemleak_scan_commands(wait)
        res = self._run_step("unload", second, max(timeout, 120.0) + max(wait, 0), "the kmemleak scan")
        text = debugk.symbolize_report(res.stdout, self.module_maps)
        self.result.dmesg["kmemleak"] = cap(text)
        names = [m.name for m in modules]
        mine, others = debugk.attribute_leaks(text, names)
        self.result.phase("unload").log += (f"$ kmemleak scan: {len(mine)} leak(s) of {', '.join(names)}, "
                                            f"{len(others)} of the kernel itself\n")
        for records, blocking in ((mine, True), (others, False)):
            for f in health.scan_kernel_log("\n".join(records)):
                if blocking:
                    frame = re.search(r"(\w+\+0x[0-9a-f]+/0x[0-9a-f]+ \[\w+\])", f.report)
                    f = dataclasses.replace(
                        f, summary=f.summary.rstrip(":") + (f", allocated in {frame.group(1)}" if frame else ""),
                        module=f.module or (frame and frame.group(1).rsplit("[", 1)[1].rstrip("]")))
                else:
                    f = dataclasses.replace(f, summary=f.summary + " (not the module's: no frame of it in the "
                                                                   "allocation stack)")
                self.result.findings.append(dataclasses.replace(f, phase="unload", blocking=blocking))
        if mine:
            f = next(x for x in self.result.findings if x.kind == FindingKind.KMEMLEAK and x.blocking)
            raise self._fail("unload", f"kmemleak found {len(mine)} leak(s): {f.summary}")

    def _unload(self, modules, config: ModuleConfig, timeout: float) -> None:
        ph = self.result.phase("unload")
        ph.status = "running"
        t = time.monotonic()
        try:
            for m in reversed(modules):
                self._module_command("unload", m.name, ["rmmod", m.name], timeout)
            if self.khgpio is not None:
                self._module_command("unload", khgpio.MODULE, ["rmmod", khgpio.MODULE], timeout)
            if "kmemleak" in self.debug:
                self._kmemleak_scan(modules, timeout)
            unloaded = [m.name for m in modules] + ([khgpio.MODULE] if self.khgpio is not None else [])
            self._check_health("unload", timeout, unloaded, listed=False)
            self._expect_dmesg("unload", config.unload_expect_dmesg, modules)
        finally:
            ph.duration = time.monotonic() - t
        ph.status = "pass"


def _strip_debug(data: bytes, profile: TargetProfile) -> bytes:
    """The module without its DWARF (symbols stay, so oopses still name functions): a tenth of
    the bytes to send to a restored guest. Unchanged if the target's strip is missing or fails."""
    strip = shutil.which(f"{profile.cross_compile}strip")
    if strip is None:
        return data
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.ko", Path(d) / "out.ko"
        src.write_bytes(data)
        p = subprocess.run([strip, "--strip-debug", "-o", str(dst), str(src)], capture_output=True)
        return dst.read_bytes() if p.returncode == 0 and dst.is_file() else data


def run(opts: RunOptions) -> Result:
    return Run(opts).execute()
