"""Choosing the accelerator: KVM only where it really works, else TCG.

``/dev/kvm`` existing proves nothing (on some hosts guests hang in it, or QEMU aborts on an MSR).
So ``auto`` boots the real guest under KVM with a short timeout; if it does not reach its command
channel, TCG it is. The verdict is cached per host boot, QEMU binary and target.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from kharness import hostarch
from kharness.lock import file_lock
from kharness.paths import cache_dir
from kharness.targets import TargetProfile
from kharness.vm.errors import GuestError
from kharness.vm.machine import Guest
from kharness.vm.qemu import BootSpec, qemu_binary

PROBE_TIMEOUT = 8.0
ACCELS = ("auto", "kvm", "tcg")


def kvm_possible(profile: TargetProfile) -> tuple[bool, str]:
    host = hostarch.machine()
    if profile.kvm_host_arch != host:
        return False, f"KVM not possible: host is {host}, guest is {profile.name}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "KVM not available: /dev/kvm missing or not accessible"
    return True, ""


def _probe_key(profile: TargetProfile) -> str:
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown"
    q = qemu_binary(profile)
    return f"{boot_id}-{profile.name}-{int(os.stat(q).st_mtime)}"


def probe_kvm(profile: TargetProfile, boot: BootSpec) -> tuple[bool, str]:
    """Boot ``boot`` under KVM; True if the command channel came up within PROBE_TIMEOUT."""
    cache = cache_dir() / "accel" / f"{_probe_key(profile)}.json"
    with file_lock(cache.with_suffix(".lock")):
        if cache.exists():
            data = json.loads(cache.read_text())
            return data["ok"], data["note"]
        work = Path(tempfile.mkdtemp(prefix="kharness-kvm-probe-"))
        try:
            with Guest(profile, boot, work, accel="kvm") as g:
                g.wait_ready(PROBE_TIMEOUT)
            ok, note = True, "KVM probe boot passed"
        except GuestError as e:
            ok, note = False, f"KVM probe failed ({e.message}); using TCG"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"ok": ok, "note": note}))
        for old in cache.parent.glob("*.json"):
            if old != cache and not old.name.startswith(_probe_key(profile).split("-")[0]):
                old.unlink(missing_ok=True)
        return ok, note


def choose_accel(profile: TargetProfile, requested: str, boot: BootSpec) -> tuple[str, str]:
    """``(accel, note)`` for a run. ``requested`` is auto, kvm or tcg."""
    if requested == "tcg":
        return "tcg", "TCG requested"
    possible, why = kvm_possible(profile)
    if requested == "kvm":
        return "kvm", "KVM requested" if possible else f"KVM requested ({why})"
    if not possible:
        return "tcg", why
    ok, note = probe_kvm(profile, boot)
    return ("kvm" if ok else "tcg"), note
