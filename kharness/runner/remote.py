"""A board over SSH (``--remote user@host[:port]``): kharness asks it what it runs, builds for that,
and hands it the module instead of booting a guest.

The board is never rebooted and is left as it was found: kharness's files live under /kh (made
by it, marked, removed at the end, kharness.vm.ssh) and only the modules it loaded are unloaded.
What the board runs decides the target profile (``uname -m`` and its byte order) and the kernel
(``uname -r``, resolved in Debian's archive as ``--kernel`` is)."""

from __future__ import annotations

import dataclasses
import re

from kharness import ui
from kharness.errors import UsageError
from kharness.targets import TargetProfile, all_targets, get_target
from kharness.vm.errors import GuestError

CONNECT_TIMEOUT = 30.0   # a board on the desk answers in a second; a slow network in a few
PROBE_TIMEOUT = 30.0

# `uname -m` -> the targets that can serve a board that says it (the first is the default): a
# Raspberry Pi with a 64-bit kernel says aarch64 and builds as the arm64 target does.
MACHINES = {"x86_64": ("x86_64",), "aarch64": ("arm64", "rpi3"), "armv7l": ("rpi2",), "armv8l": ("rpi2",),
            "ppc64le": ("ppc64le",), "ppc64": ("ppc64",)}


def profile_for(machine: str, endian: str, asked: str | None) -> TargetProfile:
    """The target profile for a board that says ``machine`` and ``endian``; ``asked`` (--target,
    when given) must fit it."""
    fits = MACHINES.get(machine, ())
    if asked:
        profile = get_target(asked)
        if fits and profile.name not in fits:
            raise UsageError(f"the board runs {machine} ({endian}-endian), which target {asked} cannot serve",
                             hint=f"leave --target out, or use {' or '.join(fits)}")
        return profile
    if not fits:
        known = ", ".join(sorted(MACHINES))
        raise UsageError(f"the board runs {machine!r}, for which kharness has no target profile",
                         hint=f"kharness serves boards that say one of: {known}")
    profile = all_targets()[fits[0]]
    if profile.endian != endian:
        raise UsageError(f"the board runs {machine} {endian}-endian, unlike target {profile.name}")
    return profile


def connect(opts, asked_target: str | None):
    """Connect to the board and ask it what it runs: (the guest, its profile, its kernel release).
    A host key that is unknown (without --accept-new-host-key) or changed is refused (exit 2)."""
    # Here, not at the top: paramiko (and its cryptography) is ~0.1 s that only SSH runs pay.
    from kharness.vm.ssh import HostKeys, SshGuest, parse_address

    address = parse_address(opts.remote)
    guest = SshGuest(address, identity=opts.identity, host_keys=HostKeys(known_hosts=opts.known_hosts,
                                                                          accept_new=opts.accept_new_host_key),
                     use_agent=True, cleanup=True)
    try:
        with ui.step(f"connecting to {address.user}@{address.host}:{address.port}"):
            guest.connect(CONNECT_TIMEOUT)
            facts = guest.probe(PROBE_TIMEOUT)
            # The kernel log on a channel of its own: what reaches us before a board dies is the
            # evidence of why ("unreachable after insmod").
            guest.start_log_stream()
    except GuestError as e:
        guest.close()
        from kharness.errors import InfraError
        raise InfraError(f"{opts.remote} did not answer: {e.message}",
                         hint="check the address and that sshd runs there") from None
    except BaseException:
        guest.close()
        raise
    try:
        profile = profile_for(facts.machine, facts.endian, asked_target)
        before = guest.run("cut -d' ' -f1 /proc/modules", PROBE_TIMEOUT).stdout.split()
    except BaseException:
        guest.close()
        raise
    guest = LeavesModulesAsFound(guest, before)
    guest.release = facts.release
    # A board is never snapshotted nor booted.
    return guest, dataclasses.replace(profile, snapshot=False), facts.release


def vermagic_mismatch(modules, release: str, board_vermagic: str | None) -> str | None:
    """Why the built modules would not load on the board (None if they would): their vermagic's
    release must be the board's ``uname -r``, and the rest (SMP, preempt, modversions, arch) must
    match a module the board already has, when it has one to compare with."""
    for m in modules:
        vm = (m.vermagic or "").split()
        if not vm:
            continue
        if vm[0] != release:
            return f"{m.name}.ko was built for {vm[0]}, the board runs {release}"
        if board_vermagic and vm != board_vermagic.split():
            return f"{m.name}.ko has vermagic {' '.join(vm)!r}, the board's modules {board_vermagic!r}"
    return None


_NAME_RE = re.compile(r"\w+")
UNLOAD_TIMEOUT = 30.0


def unload_new_command(before: list[str]) -> str:
    """The board command that unloads every module not loaded in ``before`` (newest first, in a
    few passes: one that held another goes first). What the board had stays."""
    keep = " ".join(m for m in before if _NAME_RE.fullmatch(m))
    return ("for pass in 1 2 3; do for m in $(cut -d' ' -f1 /proc/modules); do "
            f"case ' {keep} ' in *\" $m \"*) ;; *) rmmod \"$m\" 2>/dev/null ;; esac; done; done; true")


class LeavesModulesAsFound:
    """The board, which on close unloads every module that was not loaded when kharness connected:
    the modules under test and their chain after a failed load (the unload phase does not run
    then), and what the kernel or udev loaded because of them. Everything else goes through."""

    def __init__(self, guest, before: list[str]):
        object.__setattr__(self, "_guest", guest)
        object.__setattr__(self, "_before", list(before))

    def __getattr__(self, name):
        return getattr(self._guest, name)

    def __setattr__(self, name, value):
        setattr(self._guest, name, value)

    def close(self) -> None:
        try:
            t = self._guest.transport
            if t is not None and t.is_active():
                self._guest.run(unload_new_command(self._before), UNLOAD_TIMEOUT)
        except Exception:   # noqa: BLE001 - close() never raises (a dead board: nothing to unload)
            pass
        self._guest.close()
