"""Ready-guest snapshots: boot once, ``savevm`` at the command loop, restore in a fraction of a
second.

A snapshot is the VM state of a guest booted from the base image (kernel + base initramfs +
device tree, no module) and idle at its command loop, saved with QMP ``savevm`` into a qcow2
file the guest never sees (``-drive if=none``). Restoring starts QEMU with the same devices plus
``-loadvm``: RAM, CPU and devices come back exactly as saved, so the guest is in the state it
had before any module was ever loaded. The module reaches it afterwards over the command channel.

Each run restores from its own copy of the qcow2 (QEMU writes to the image it loads from, and
parallel runs must not share one). The cache key covers everything that must be identical
between save and restore: the QEMU binary's version, the profile, the accelerator, and the
content of the kernel, initramfs and device tree.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kharness import proc, ui
from kharness.errors import InfraError
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.targets import TargetProfile
from kharness.vm.errors import GuestError
from kharness.vm.machine import Guest
from kharness.vm.qemu import BootSpec, qemu_binary

TAG = "kh-ready"
FORMAT = 2   # 2: a `prepare` command may run before the save, its output kept in meta.json
# A restored guest's first command proves that its timers run (the runner's setup command starts
# with a 1 ms sleep); a guest whose timers stalled cannot answer it in this time, and the runner
# boots one instead. This is the limit at the default --boot-timeout on an idle host: the runner
# scales it up with a longer --boot-timeout and with the host's load (runner.restore_limit).
PROBE_TIMEOUT = 10.0
# savevm writes the guest's RAM to the qcow2: seconds, longer on a loaded host; the allowance
# grows with --boot-timeout (see ensure).
QMP_TIMEOUT = 120.0
HOST_TOOL_TIMEOUT = 60.0   # qemu-img create, qemu --version


@dataclass(frozen=True)
class Snapshot:
    path: Path          # the qcow2 holding the VM state
    key: str
    release: str
    save_seconds: float
    prepared: str = ""  # the stdout of the prepare command that ran just before the save

    def restore_args(self, copy: Path) -> tuple[str, ...]:
        return ("-drive", f"if=none,id=vmstate,format=qcow2,file={copy}", "-loadvm", TAG)


def _identity(path: Path | None) -> str:
    """A file's identity, cheaply: kernels, initramfs images and device trees live in the cache
    under content-derived names and are never rewritten in place, so path, size and mtime
    change whenever their content does (hashing a 60 MB vmlinux on every run would cost 0.3 s)."""
    if path is None:
        return "-"
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def snapshot_key(profile: TargetProfile, boot: BootSpec, accel: str, prepare: str = "") -> str:
    version = proc.run([qemu_binary(profile), "--version"], timeout=HOST_TOOL_TIMEOUT,
                       what=f"{profile.qemu} --version").stdout
    fields = {k: v for k, v in dataclasses.asdict(profile).items() if k != "source"}
    parts = [FORMAT, version.splitlines()[0] if version else "", repr(sorted(fields.items())), accel,
             _identity(boot.kernel), _identity(boot.initrd), _identity(boot.dtb), boot.append, prepare]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _qmp(sock: Path, command: str, timeout: float) -> str:
    """A human-monitor command (``savevm``) over QMP, answered within ``timeout`` seconds or
    InfraError: the snapshot lock is held meanwhile, and every other worker waits for it."""
    # Here, not at the top: only saving a snapshot talks QMP, and asyncio with qemu.qmp is
    # ~15 ms of every restored run's imports.
    from kharness.vm import qmp

    return qmp.hmp(sock, command, timeout)


def _create_image(qcow: Path) -> None:
    p = proc.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "1G"], timeout=HOST_TOOL_TIMEOUT,
                 what="qemu-img create")
    if p.returncode != 0:
        raise InfraError(f"qemu-img create failed: {p.stderr.strip()}", hint="run `make install`")


def _read(d: Path, prepared: str | None = None) -> Snapshot | None:
    """The snapshot saved in ``d``, or None if there is none or it is damaged or partial (never
    used). ``prepared``: what its prepare command printed, when it is not in its own meta.json."""
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    qcow = d / "vmstate.qcow2"
    if not qcow.is_file() or qcow.stat().st_size != meta.get("size"):
        return None
    return Snapshot(qcow, d.name, meta["release"], meta["save_seconds"],
                    meta.get("prepared", "") if prepared is None else prepared)


def load(profile: TargetProfile, boot: BootSpec, accel: str, prepare: str = "") -> Snapshot | None:
    """The cached snapshot for this exact guest, or None."""
    return _read(cache_dir() / "snapshots" / f"{profile.name}-{snapshot_key(profile, boot, accel, prepare)}")


def ensure(profile: TargetProfile, boot: BootSpec, accel: str, boot_timeout: float, prepare: str = "") -> Snapshot:
    """Boot the base image once and save it ready (cached; concurrent callers wait for one).
    ``prepare``: a guest command run just before the save (its output is kept with the snapshot)."""
    key = snapshot_key(profile, boot, accel, prepare)
    final = cache_dir() / "snapshots" / f"{profile.name}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        snap = load(profile, boot, accel, prepare)
        if snap is not None:
            return snap
        with staging_dir(final) as tmp, ui.step(f"saving a ready snapshot of {profile.name}"):
            qcow = tmp / "vmstate.qcow2"
            _create_image(qcow)
            # Named like a run's directory (kharness-run-<pid>-...), so that the next run removes
            # it if this process is killed meanwhile.
            run_dir = Path(tempfile.mkdtemp(prefix=f"kharness-run-{os.getpid()}-snap-"))
            sock = run_dir / "qmp.sock"
            guest = Guest(profile, boot, run_dir, accel,
                          ("-drive", f"if=none,id=vmstate,format=qcow2,file={qcow}",
                           "-qmp", f"unix:{sock},server=on,wait=off"))
            try:
                guest.start()
                release = guest.wait_ready(boot_timeout)
                prepared = guest.run(prepare, boot_timeout).stdout if prepare else ""
                t = time.monotonic()
                # On a timeout QEMU is killed below (guest.close) and the lock released.
                out = _qmp(sock, f"savevm {TAG}", max(QMP_TIMEOUT, boot_timeout))
                if out.strip():
                    raise InfraError(f"savevm failed on {profile.name}: {out.strip()}")
                saved = time.monotonic() - t
            except GuestError as e:
                raise InfraError(f"the snapshot guest did not come up: {e.message}") from None
            finally:
                guest.close()
                shutil.rmtree(run_dir, ignore_errors=True)
            (tmp / "meta.json").write_text(json.dumps({
                "release": release, "save_seconds": round(saved, 3), "size": qcow.stat().st_size,
                "prepared": prepared,
                "target": profile.name, "accel": accel, "kernel": str(boot.kernel), "initrd": str(boot.initrd)}))
    snap = load(profile, boot, accel, prepare)
    if snap is None:
        raise InfraError(f"the snapshot for {profile.name} could not be saved")
    return snap


# --- derived snapshots: a ready snapshot with files that stay the same run after run ------------------
# The kernel's own modules a run needs and its programs reach a restored guest over the command
# channel (kharness.runner.image.rides_along). Sent once and saved with the guest, they cost later
# runs nothing: a run with such files saves the guest, restored from the ready snapshot and given
# them (and nothing of the module under test yet), as a snapshot of its own, keyed by the ready
# snapshot and the files' content; later runs with the same files restore that one instead.

def _derived_dir(base: Snapshot, files_key: str) -> Path:
    return cache_dir() / "snapshots" / f"{base.key}+{files_key}"


def load_derived(base: Snapshot, files_key: str) -> Snapshot | None:
    """The snapshot of ``base``'s guest with the files ``files_key`` names in place, or None."""
    return _read(_derived_dir(base, files_key), base.prepared)


def save_derived(base: Snapshot, files_key: str, sock: Path, qcow: Path) -> Snapshot | None:
    """``savevm`` the running guest (started from a copy of ``base``, ``qcow``, with a QMP socket
    at ``sock``) and keep a copy of its state as the derived snapshot for ``files_key``; the guest
    goes on running. None (and a note) if it could not be saved: the run goes on all the same."""
    final = _derived_dir(base, files_key)
    try:
        with file_lock(final.with_name(final.name + ".lock"), timeout=QMP_TIMEOUT):
            snap = load_derived(base, files_key)
            if snap is not None:
                return snap
            with staging_dir(final) as tmp:
                t = time.monotonic()
                out = _qmp(sock, f"savevm {TAG}", QMP_TIMEOUT)
                if out.strip():
                    raise InfraError(f"savevm failed: {out.strip()}")
                saved = time.monotonic() - t
                shutil.copyfile(qcow, tmp / "vmstate.qcow2")
                (tmp / "meta.json").write_text(json.dumps({
                    "release": base.release, "save_seconds": round(saved, 3),
                    "size": (tmp / "vmstate.qcow2").stat().st_size, "derived_from": base.key,
                    "files": files_key}))
    except (InfraError, OSError) as e:
        ui.info(f"[yellow]could not save the guest with its files ({e}); the next run sends them again[/yellow]")
        return None
    return load_derived(base, files_key)


def discard(snap: Snapshot) -> None:
    """Remove a snapshot that restored into a broken guest, so that the next run saves anew."""
    d = snap.path.parent
    with file_lock(d.with_name(d.name + ".lock")):
        shutil.rmtree(d, ignore_errors=True)
