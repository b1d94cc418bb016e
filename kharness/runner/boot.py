"""The boot phase: restore the ready snapshot where there is one and hand the restored guest this
run's modules, else boot a guest with them in its initrd; then the first health look."""

from __future__ import annotations

import os
import shutil
import time

from kharness import agent_client as agent
from kharness import ui
from kharness.errors import InfraError
from kharness.image.initramfs import bundle, write_run_initrd
from kharness.image.overlay import files_key
from kharness.result.model import cap
from kharness.runner.build import Built
from kharness.runner.context import Context
from kharness.runner.image import Staged, strip_debug
from kharness.runner.options import DEFAULT_BOOT_TIMEOUT
from kharness.runner.prepare import Prepared
from kharness.vm import snapshot
from kharness.vm.accel import choose_accel
from kharness.vm.errors import BootTimeout, CommandTimeout, GuestDied, QemuStartError
from kharness.vm.machine import Guest as QemuGuest
from kharness.vm.qemu import BootSpec, reproducer

# A restored guest's setup allows its files this share of the target's measured channel rate
# (profile.channel_rate, bench/bench_delivery.py): a loaded host slows the guest down that much.
CHANNEL_SLACK = 4

# What a restored guest runs first; tests/integration/test_snapshot.py patches it to stall a restore.
RESTORED_CMD = agent.RESTORED_CMD


def _public():
    """The runner package, whose RESTORED_CMD and host_load are read at call time:
    tests/integration/test_snapshot.py replaces them there to stall a restore on a busy host."""
    import kharness.runner
    return kharness.runner


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
    busy, cpus = _public().host_load() if load is None else load
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


def new_guest(run: Context, *args):
    return (run.guest_factory or QemuGuest)(*args)


def boot(run: Context, prep: Prepared, built: Built, staged: Staged) -> None:
    opts, r, profile = run.opts, run.result, run.profile
    with run.phase("boot") as ph:
        accel, note = choose_accel(profile, opts.accel, staged.boot)
        r.accelerator, r.accelerator_note = accel, note
        snap = choose_snapshot(run, staged.boot, accel)
        try:
            if snap is not None and not restore(run, snap, staged.boot, staged.payload, built.spec.release,
                                                prep.timeout, staged.as_is):
                snap = None   # the restored guest did not work: boot one instead
            if snap is None:
                initrd = write_run_initrd(staged.base, staged.payload, run.workdir / "initrd.img")
                run.guest = new_guest(run, profile, BootSpec(staged.kernel.kernel, initrd, staged.dtb),
                                      run.workdir, accel)
                r.reproducer["qemu"] = reproducer(run.guest.argv)
                run.guest.start()
                with ui.step(f"booting {built.spec.release} on {profile.name} ({accel})"):
                    run.guest.wait_ready(opts.boot_timeout)
            # ";": the health look runs even if a cursor could not be moved.
            run.look("boot", prep.timeout, agent.boot_look())
            run.devices_at_boot = dict(run.char_devices)
        except (QemuStartError, BootTimeout, GuestDied, CommandTimeout) as e:
            ph.log = cap(e.console_tail)
            raise InfraError(f"the guest did not boot: {e.message}",
                             hint="see the console log in the JSON result (phase boot)") from None
        ph.message = (f"ready in {run.guest.boot_seconds:.1f}s" if snap is None else
                      f"restored from snapshot in {run.guest.boot_seconds:.2f}s")
        if snap is None and r.boot_mode_note.startswith("restoring"):
            ph.message += f" ({r.boot_mode_note})"


def choose_snapshot(run: Context, boot: BootSpec, accel: str):
    """The ready snapshot to restore, or None for a cold boot (with the reason in the result)."""
    r, opts, profile = run.result, run.opts, run.profile
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
    run.boot_log = agent.parse_health(snap.prepared).log
    if r.image is not None:
        r.image.snapshot = str(snap.path)
    return snap


class _At:
    """Where a restore is (a step and its limit), said in the result when it is abandoned."""
    step, limit = "", ""


def restore(run: Context, snap, boot: BootSpec, payload: dict[str, bytes], release: str, timeout: float,
            as_is: frozenset[str] = frozenset()) -> bool:
    """Start the guest from its ready snapshot and hand it this run's files. False (the guest
    torn down, the reason in the result) when the restored guest does not work: the caller boots
    one instead. Nothing of the module has run yet, so this is never its fault.

    The files in ``as_is`` stay the same run after run (the kernel's own modules, programs): the
    first run with them saves the guest once they are in (kharness.vm.snapshot.save_derived) and
    later runs restore that snapshot, so that only the module under test crosses the channel."""
    profile, r, opts = run.profile, run.result, run.opts
    resident = {n: d for n, d in payload.items() if n in as_is}
    key = files_key(resident) if resident else None
    derived = snapshot.load_derived(snap, key) if key else None
    use = derived or snap
    copy = run.workdir / "vmstate.qcow2"
    shutil.copyfile(use.path, copy)
    args = use.restore_args(copy)
    sock = None
    if key and derived is None:   # the first run with these files: save the guest once it has them
        sock = run.workdir / "qmp.sock"
        args += ("-qmp", f"unix:{sock},server=on,wait=off")
    run.guest = new_guest(run, profile, boot, run.workdir, r.accelerator, args)
    r.reproducer["qemu"] = reproducer(run.guest.argv)
    if derived is not None:
        r.boot_mode_note = f"restored {derived.key} (with the run's unchanging files)"
        if r.image is not None:
            r.image.snapshot = str(derived.path)
    at = _At()
    at.limit = f"--boot-timeout {opts.boot_timeout:g}s"
    try:
        at.step = "starting QEMU"
        run.guest.start()
        with ui.step(f"restoring {release} on {profile.name} from its snapshot ({r.accelerator})"):
            at.step = "the restored guest's first answer"
            run.guest.wait_restored(opts.boot_timeout, snap.release)
            rest = {n: d for n, d in payload.items() if n not in as_is}
            if sock is not None:
                restored_setup(run, resident, timeout, at, as_is, look=False)
                at.step = "saving the guest with its files"
                if snapshot.save_derived(snap, key, sock, copy) is not None:
                    r.boot_mode_note += "; saved with the run's unchanging files for the next runs"
                run.first_look = restored_setup(run, rest, timeout, at, probe=False)
            else:
                run.first_look = restored_setup(run, rest if derived is not None else payload, timeout, at, as_is)
        return True
    except (QemuStartError, BootTimeout, GuestDied, CommandTimeout, InfraError) as e:
        why = f"at {at.step}: {getattr(e, 'message', str(e))}; limit {at.limit}"
        ui.info(f"[yellow]the restored guest did not work ({why}); booting instead[/yellow]")
        r.boot_mode, r.boot_mode_note = "cold", f"restoring {use.key} abandoned ({why}); booted instead"
        snapshot.discard(use)   # saved in a bad moment: the next run saves a new one
        if r.image is not None:
            r.image.snapshot = None
        run.boot_log = ""
        run.first_look = None
        run.guest.close()
        run.guest = None
        return False


# The largest bundle sent uncompressed (a guest over SSH): past it, gzip keeps it well inside the
# 16 MiB of base64 one request may carry (kh-agent's MAX_LEN).
UNCOMPRESSED_BUNDLE_MAX = 4 << 20


def restored_setup(run: Context, payload: dict[str, bytes], timeout: float, at: _At | None = None,
                   as_is: frozenset[str] = frozenset(), *, probe: bool = True, look: bool = True,
                   compressed: bool = True):
    """A restored guest is the saved one: check that its timers run, give it the host's clock,
    fresh randomness, and this run's files (its modules with their debug info stripped; those in
    ``as_is``, such as the kernel's own modules, as they are), then take the first health look;
    all in ONE guest command (each costs tens of milliseconds under TCG), the files its stdin as
    one bundle. Returns that command's result (None when there was nothing to do).
    ``probe=False`` leaves out the timer probe (a later setup command), ``look=False`` the look
    (one before the guest is saved with its files); ``compressed=False`` sends the bundle as it
    is (over SSH: a fast channel, and a gunzip fewer in the guest)."""
    at = at or _At()
    seed = os.urandom(32).hex()
    files = {name: strip_debug(data, run.profile) if name.endswith(".ko") and name not in as_is else data
             for name, data in payload.items()}
    # Uncompressed only while small: the command channel takes at most kh-agent's MAX_LEN.
    data = bundle(files, compressed) if files else b""
    if not compressed and len(data) > UNCOMPRESSED_BUNDLE_MAX:
        data, compressed = bundle(files, True), True
    # ``probe``: the timer probe (the first command after the restore); ``look``: the first
    # health look (the last setup command: what the kernel said from here on is the load's).
    steps = [agent.restored(int(time.time()), seed, template=_public().RESTORED_CMD)] if probe else []
    if files:
        steps.append(agent.unpack_command(made=probe, compressed=compressed))   # (the probe makes /kh)
    if look:
        steps += [agent.LOAD_MARK, agent.health()]
    if not steps:
        return None
    probe_limit, reckoning = restore_limit(run.opts.boot_timeout) if probe else (timeout, f"the step timeout {timeout:g}s")
    # The command carries the timer probe: a guest that cannot answer it is broken. Its limit
    # also covers sending the files (well above the channel's speed under TCG on a busy host).
    extra = round(len(data) * 4 / 3 * CHANNEL_SLACK / run.profile.channel_rate, 1)   # base64
    what = (["timer probe"] if probe else []) + ([f"{len(files)} file(s) in {len(data)} bytes"] if files else [])
    at.step = f"the setup command ({', '.join(what) or 'health look'})"
    at.limit = reckoning + (f" + {extra:g}s for the files" if extra else "")
    res = run.guest.run(" && ".join(steps), probe_limit + extra, stdin=data)
    if res.rc != 0:
        raise InfraError(f"the restored guest could not be set up: {res.stderr.strip()[:200] or res.rc}")
    return res
