"""A distro guest's ready snapshot: booted once, saved at the point where sshd answers, restored by
every later run.

Unlike the busybox guest's, it is two files: the guest's root disk as it was at the save (a qcow2
overlay on the cached root filesystem) and its VM state, a migration stream QEMU wrote to a file
handed to it open (QMP ``getfd``, ``migrate fd:``) and reads back the same way (``-incoming fd:N``).
Each run gets a fresh qcow2 overlay of its own on that saved disk, which stays read-only: nothing
is copied, and parallel runs share it. It used to be ``savevm`` into the root qcow2, which each run
copied (~120 MB) before ``-loadvm`` read 111 MiB back out of it in 0.45-0.8 s; the incoming
migration takes ~0.14 s (x86_64 under TCG). The SSH session is closed before the save; a restored
guest is reached on a new one (and a new loopback port: the host side of user-mode networking is
not part of the saved state).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from kharness import ui
from kharness.errors import InfraError
from kharness.image import distro
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.runner.context import Context
from kharness.sshkeys import client_key
from kharness.vm import snapshot
from kharness.vm.distro_guest import DistroGuest
from kharness.vm.errors import GuestError
from kharness.vm.qemu import reproducer

FORMAT = 4   # 2: the console at log level 8; 3: the VM state a migration stream beside the disk; 4: warmed up
DISK = "root.qcow2"
WARM_UP = "kh-agent version && cat /proc/version"
STATE = "state.bin"


def _guest(run_or_none, profile, boot, workdir: Path, accel: str, image, root: Path, extra=()) -> DistroGuest:
    port = distro.free_port()
    args = tuple(distro.qemu_args(profile, image, root, port)) + tuple(extra)
    factory = getattr(run_or_none, "guest_factory", None) if run_or_none is not None else None
    if factory is not None:
        return factory(profile, boot, workdir, accel, args)
    return DistroGuest(profile, boot, workdir, accel, args, ssh_port=port, identity=client_key()[0],
                       host_key=image.host_key, user=image.user)


def _agent(profile) -> bytes:
    from kharness.hw.agent import build_agent

    return build_agent(profile).read_bytes()


def _dir(profile, boot, accel: str, image) -> Path:
    # kh-agent and kh-serve are saved with the guest: a new one of either is a new snapshot.
    from kharness.paths import data_dir

    agent_id = hashlib.sha256(_agent(profile) + (data_dir("images") / "kh-serve").read_bytes()).hexdigest()[:16]
    key = snapshot.snapshot_key(profile, boot, accel, prepare=f"distro-{FORMAT}-{image.key}-{agent_id}")
    return cache_dir() / "snapshots" / f"{profile.name}-distro-{key}"


def _usable(d: Path) -> bool:
    try:
        meta = json.loads((d / "meta.json").read_text())
        return (d / DISK).stat().st_size == meta["size"] and (d / STATE).stat().st_size == meta["state_size"]
    except (OSError, ValueError, KeyError):
        return False


def incoming_args(state: Path) -> tuple[str, ...]:
    """QEMU's arguments that restore the VM state saved in ``state``, as a command line to give
    someone (QEMU runs the command with /bin/sh: the path is quoted for it). A run gives QEMU the
    file open instead (``fd:N``): no cat and no pipe between, 0.14 s against 0.24 s (medians,
    x86_64 under TCG)."""
    return ("-incoming", f"exec:cat {shlex.quote(str(state))}")


def ensure(profile, boot, accel: str, image, boot_timeout: float) -> Path:
    """The directory of the saved ready guest (its root disk and VM state), booted and saved the
    first time."""
    final = _dir(profile, boot, accel, image)
    with file_lock(final.with_name(final.name + ".lock")):
        if _usable(final):
            return final
        with staging_dir(final) as tmp, ui.step(f"saving a ready snapshot of the {image.suite} guest on {profile.name}"):
            root = distro.overlay(profile, image.rootfs, tmp / DISK)
            run_dir = Path(tempfile.mkdtemp(prefix=f"kharness-run-{os.getpid()}-snap-"))
            sock = run_dir / "qmp.sock"
            guest = _guest(None, profile, boot, run_dir, accel, image, root,
                           ("-qmp", f"unix:{sock},server=on,wait=off"))
            try:
                guest.start()
                release = guest.wait_ready(boot_timeout)
                guest.install_agent(_agent(profile), boot_timeout)
                # The page cache the boot filled is RAM the save would store and every restore
                # load: dropped, its pages are zeroed (init_on_free=1, kernel_append) and saved
                # as nothing.
                guest.run("sync; echo 3 > /proc/sys/vm/drop_caches", boot_timeout)
                guest.disconnect()
                # Then once more what every restored run does first, so that what it reads is
                # in the saved page cache, not read from the disk after the restore: a new SSH
                # connection (sshd's authentication and session code, never run at boot), the
                # command session (bash, dash, kh-serve, kh-agent) and a command (cat, which a
                # check runs most).
                guest.ssh.connect(boot_timeout)
                guest.run(f"{WARM_UP} >/dev/null", boot_timeout)
                guest.disconnect()
                t = time.monotonic()
                from kharness.vm import qmp
                # Migrated while it runs (an idle guest converges at once), so that the restored
                # one starts running by itself; at the end QEMU stops the guest and flushes its
                # disks, which is then the disk that goes with the state.
                qmp.migrate(sock, tmp / STATE, max(snapshot.QMP_TIMEOUT, boot_timeout))
                saved = time.monotonic() - t
            except GuestError as e:
                raise InfraError(f"the distro guest to snapshot did not come up: {e.message}") from None
            finally:
                guest.close()
                shutil.rmtree(run_dir, ignore_errors=True)
            (tmp / "meta.json").write_text(json.dumps({
                "release": release, "save_seconds": round(saved, 3), "size": (tmp / DISK).stat().st_size,
                "state_size": (tmp / STATE).stat().st_size,
                "target": profile.name, "accel": accel, "distro": image.key, "suite": image.suite}))
    if not _usable(final):
        raise InfraError(f"the distro snapshot for {profile.name} could not be saved")
    return final


# A restored guest answers SSH in a second or two (x86_64 and arm64 under TCG, idle). Its limit is
# the busybox restore's, which grows with the host's load and --boot-timeout, times this for the
# SSH handshake the guest does under TCG: one that never answers (stalled timers) is given up in
# tens of seconds, not after a whole --boot-timeout, and booted instead.
RESTORE_SSH_FACTOR = 3.0


def restore_deadline(boot_timeout: float) -> float:
    from kharness.runner.boot import restore_limit

    return min(boot_timeout, RESTORE_SSH_FACTOR * restore_limit(boot_timeout)[0])


def start(run: Context, staged, accel: str, timeout: float) -> bool:
    """Start this run's distro guest (run.guest): restored from the ready snapshot (True) or, with
    --cold, without snapshots or when none could be saved, booted (False)."""
    opts, r, profile, image = run.opts, run.result, run.profile, staged.distro
    root = run.workdir / "root.qcow2"
    saved = None
    if opts.cold or not (profile.snapshot and profile.distro_snapshot):
        r.boot_mode, r.boot_mode_note = "cold", ("--cold" if opts.cold else
                                                 f"{profile.name} does not support snapshots of distro guests")
    else:
        try:
            saved = ensure(profile, staged.boot, accel, image, opts.boot_timeout)
        except InfraError as e:
            r.boot_mode, r.boot_mode_note = "cold", f"no snapshot: {e}"
            ui.info(f"[yellow]no snapshot ({e}); booting cold[/yellow]")
    if saved is not None:
        try:
            distro.overlay(profile, saved / DISK, root, base_format="qcow2")
            state = os.open(saved / STATE, os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, InfraError) as e:   # (removed meanwhile by a run that could not restore it)
            r.boot_mode, r.boot_mode_note = "cold", f"no snapshot: {e}"
            saved = None
    if saved is not None:
        monitor = run.workdir / "qmp.sock"
        qmp_args = ("-qmp", f"unix:{monitor},server=on,wait=off")
        try:
            run.guest = _guest(run, profile, staged.boot, run.workdir, accel, image, root,
                               ("-incoming", f"fd:{state}") + qmp_args)
            run.guest.pass_fds = (state,)
            shown = list(run.guest.argv)
            shown[shown.index(f"fd:{state}")] = incoming_args(saved / STATE)[1]
            r.reproducer["qemu"] = reproducer(shown)
            run.guest.start()
        finally:
            os.close(state)   # (QEMU has its own)
        try:
            with ui.step(f"restoring the {image.suite} guest on {profile.name} ({accel})"):
                run.guest.wait_restored(restore_deadline(opts.boot_timeout), staged.kernel.release, monitor)
            r.boot_mode, r.boot_mode_note = "snapshot", f"restored {saved.name}"
            if r.image is not None:
                r.image.snapshot = str(saved / STATE)
            return True
        except GuestError as e:
            ui.info(f"[yellow]the restored guest did not answer ({e.message}); booting instead[/yellow]")
            r.boot_mode, r.boot_mode_note = "cold", f"restoring {saved.name} abandoned ({e.message}); booted instead"
            run.guest.close()
            run.guest = None
            shutil.rmtree(saved, ignore_errors=True)
    if root.exists():   # (the abandoned restore's overlay)
        root.unlink()
    distro.overlay(profile, image.rootfs, root)
    run.guest = _guest(run, profile, staged.boot, run.workdir, accel, image, root)
    r.reproducer["qemu"] = reproducer(run.guest.argv)
    run.guest.start()
    with ui.step(f"booting {image.suite} on {profile.name} ({accel})"):
        run.guest.wait_ready(opts.boot_timeout)
    return False
