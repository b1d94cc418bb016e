"""The boot phase for guests driven over SSH: a Debian distro guest (QEMU, a root disk, sshd) and a
board (``--remote``, already running). Either way kh-agent and the run's files go over SFTP into
/kh, as the busybox guest has them in its initramfs, and the phase ends with the same health look."""

from __future__ import annotations

import importlib
import os
import shlex
import threading
import time

from kharness import agent_client as agent
from kharness import ui
from kharness.errors import InfraError
from kharness.hw.agent import build_agent
from kharness.image.initramfs import PROGRAM_DIR
from kharness.result.model import cap
from kharness.runner import remote
from kharness.runner.context import AGENT_MODULE_TOOLS, Context
from kharness.runner.prepare import Prepared
from kharness.vm.accel import choose_accel
from kharness.vm.errors import BootTimeout, CommandTimeout, GuestDied, GuestError, QemuStartError
from kharness.vm.qemu import reproducer

PAYLOAD_DIR = agent.PAYLOAD_DIR   # /kh, where the modules are loaded from


def deliver(run: Context, payload: dict[str, bytes], timeout: float) -> None:
    """kh-agent into /kh/.bin, the run's files into /kh (programs executable), then the look that
    ends the boot phase."""
    g = run.guest
    t = time.monotonic()
    g.install_agent(build_agent(run.profile).read_bytes(), timeout)
    for name, data in payload.items():
        g.put_file(f"{PAYLOAD_DIR}/{name}", data, timeout)
    programs = [f"{PAYLOAD_DIR}/{n}" for n in payload if n.startswith(PROGRAM_DIR)]
    if programs:
        r = g.run("chmod 755 " + " ".join(shlex.quote(p) for p in programs), timeout)
        if r.rc != 0:
            raise InfraError(f"could not make the programs executable on the guest: {r.stderr.strip()[:200]}")
    run.result.phase("boot").log += f"delivered kh-agent and {len(payload)} file(s) in {time.monotonic() - t:.2f}s\n"


# udev rules a module ships: beside its sources, or in udev/ (as DKMS packages keep them).
UDEV_RULES_GLOBS = ("*.rules", "udev/*.rules", "udev/rules.d/*.rules")
UDEV_SETTLE = "udevadm settle --timeout=30"
# Without the module's own rules, udev acts on the devices a load makes: kh-agent settles only
# when the load emitted more uevents than its modules' own (kh-agent.c, udev-settle).
UDEV_SETTLE_IF_NEEDED = "kh-agent udev-settle"


def udev_rules(module_dir) -> dict[str, bytes]:
    """The module's udev rules: {file name: content}."""
    found = {}
    for pattern in UDEV_RULES_GLOBS:
        for p in sorted(module_dir.glob(pattern)):
            if p.is_file():
                found[p.name] = p.read_bytes()
    return found


def install_udev_rules(run: Context, timeout: float) -> None:
    """A distro guest gets the module's udev rules before the module loads, and the load waits for
    udev to have acted on them (device nodes made, their modes and owners set)."""
    rules = udev_rules(run.opts.module_dir)
    for name, data in rules.items():
        run.guest.put_file(f"/etc/udev/rules.d/{name}", data, timeout)
    if rules:
        r = run.guest.run("udevadm control --reload-rules", timeout)
        if r.rc != 0:
            raise InfraError(f"udev did not take the module's rules: {r.stderr.strip()[:200]}")
        run.result.phase("boot").log += f"udev rules installed: {', '.join(rules)}\n"
    # The module's rules may act on its own uevent (SUBSYSTEM=="module"): always settle then.
    run.after_load = UDEV_SETTLE if rules else UDEV_SETTLE_IF_NEEDED


def _import_quietly(name: str) -> None:
    """Import ``name`` ahead of its use; a failure is left to that use to raise and report."""
    try:
        importlib.import_module(name)
    except BaseException:   # noqa: BLE001 - reported by the import that needs it
        pass


def boot_distro(run: Context, prep: Prepared, built, staged) -> None:
    """A Debian guest: restored from its ready snapshot (saved by the first run), else booted.
    Its files then arrive as the busybox guest's do: one bundle (uncompressed: SSH is fast) on the
    stdin of ONE command that also (restored) sets the clock and entropy and takes the first
    health look."""
    importlib.import_module("kharness.vm.qmp")   # (first: it and paramiko then share no module to wait on)

    # paramiko (only distro runs import it) loads in the background while QEMU starts and takes
    # the guest's state back in: 0.1-0.2 s of a restored run's second or so.
    threading.Thread(target=_import_quietly, args=("paramiko",), name="kh-import-paramiko", daemon=True).start()
    from kharness.runner import distro_snapshot
    from kharness.runner.boot import restored_setup

    opts, r, profile = run.opts, run.result, run.profile
    run.module_tools = AGENT_MODULE_TOOLS   # insmod/rmmod by kh-agent: kmod's take ~0.1 s more each under TCG
    with run.phase("boot") as ph:
        accel, note = choose_accel(profile, opts.accel, staged.boot)
        r.accelerator, r.accelerator_note = accel, note
        try:
            restored = distro_snapshot.start(run, staged, accel, prep.timeout)
            r.guest["ssh_port"] = run.guest.ssh_port
            if not restored:   # (a restored guest was saved with kh-agent in place)
                run.guest.install_agent(build_agent(profile).read_bytes(), prep.timeout)
            install_udev_rules(run, prep.timeout)
            run.first_look = restored_setup(run, staged.payload, prep.timeout, as_is=staged.as_is, probe=restored,
                                            compressed=False)
            run.look("boot", prep.timeout, agent.boot_look())
            run.devices_at_boot = dict(run.char_devices)
        except (QemuStartError, BootTimeout, GuestDied, CommandTimeout) as e:
            ph.log = cap(e.console_tail or (run.guest.console_text() if run.guest else ""))
            raise InfraError(f"the distro guest did not come up: {e.message}",
                             hint="see the console log in the JSON result (phase boot)") from None
        how = "restored from snapshot" if restored else "booted"
        ph.message = f"{staged.distro.suite} {how}, SSH ready in {run.guest.boot_seconds:.2f}s"


def boot_remote(run: Context, prep: Prepared, built, staged) -> None:
    """The board is up: check that the modules fit its kernel, then hand it the files."""
    r = run.result
    g = run.guest
    run.module_tools = AGENT_MODULE_TOOLS
    with run.phase("boot") as ph:
        r.guest.update(address=run.opts.remote, machine=run.profile.name)
        try:
            board = g.run("for m in $(cut -d' ' -f1 /proc/modules | head -n 1); do "
                          "modinfo -F vermagic \"$m\" 2>/dev/null; done", prep.timeout).stdout.strip()
            why = remote.vermagic_mismatch(built.modules, g.release, board.splitlines()[0] if board else None)
            if why:
                # Built against headers that are not the board's kernel's: it cannot load, and
                # that is not the module's fault. Said before anything is tried on the board.
                raise InfraError(f"vermagic mismatch: {why}",
                                 hint=f"build against the headers of {g.release} (--headers DIR), or on the "
                                      f"board: --build-on-remote")
            with ui.step(f"sending kh-agent and {len(staged.payload)} file(s) to {run.opts.remote}"):
                deliver(run, staged.payload, prep.timeout)
            run.look("boot", prep.timeout, agent.boot_look())
            run.devices_at_boot = dict(run.char_devices)
        except GuestError as e:
            ph.log = cap(e.console_tail)
            raise InfraError(f"the board stopped answering before the module was loaded: {e.message}") from None
        ph.message = f"{run.opts.remote} runs {g.release} ({run.profile.name}); files in {PAYLOAD_DIR}"
        r.reproducer.pop("qemu", None)


__all__ = ["boot_distro", "boot_remote", "deliver", "reproducer"]
