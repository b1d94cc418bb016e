"""A QEMU guest running a full Debian userland, driven over SSH.

QEMU's half is the busybox guest's (:class:`kharness.vm.machine.Guest`): the same kernel, the
same serial console captured from the first byte (a panic that kills sshd is still seen), the
same process lifecycle and teardown. Commands take the other road: sshd in the guest, reached
through QEMU's user-mode network on a loopback port, driven by :class:`kharness.vm.ssh.SshGuest`.

The console side channel (``sysrq``, ``module_state``) has no listener on a distro guest's
console (systemd owns it), so both go over SSH on a fresh channel with a short deadline: a guest
whose command hangs usually still answers a second session; when it does not, the console is
all there is, as on a board.
"""

from __future__ import annotations

import time
from pathlib import Path

from kharness.errors import InfraError
from kharness.targets import TargetProfile
from kharness.vm.channel import CommandResult
from kharness.vm.errors import BootTimeout, CommandTimeout, GuestDied, GuestError
from kharness.vm.machine import Guest as QemuGuest
from kharness.vm.qemu import BootSpec

# How long a side-channel question (sysrq, a module's state) may take over SSH.
SIDE_TIMEOUT = 10.0
# How long a dropped connection waits for QEMU to show whether the kernel died.
DEATH_SETTLE = 5.0


CONSOLE_LOGLEVEL = 8


class DistroGuest(QemuGuest):
    """QEMU + a Debian root disk; commands over SSH to 127.0.0.1:``ssh_port``."""

    def __init__(self, profile: TargetProfile, boot: BootSpec, workdir: Path, accel: str,
                 extra_args: tuple[str, ...], *, ssh_port: int, identity: Path, host_key: str,
                 user: str = "root"):
        super().__init__(profile, boot, workdir, accel, extra_args)
        self.ssh_port = ssh_port
        self._ssh_spec = (user, identity, host_key, workdir)
        self._ssh = None

    @property
    def ssh(self):
        """The SSH side (:class:`kharness.vm.ssh.SshGuest`), made on first use: paramiko takes a
        tenth of a second or more to import, which a restored run spends while QEMU loads the
        guest's state (runner.ssh_boot imports it in the background meanwhile)."""
        if self._ssh is None:
            from kharness.vm.ssh import HostKeys, SshAddress, SshGuest

            user, identity, host_key, workdir = self._ssh_spec
            self._ssh = SshGuest(SshAddress(user, "127.0.0.1", self.ssh_port), identity=identity,
                                 host_keys=HostKeys(pinned=host_key), use_agent=False, workdir=workdir,
                                 cleanup=False)   # the guest's disk is thrown away with it
        return self._ssh

    # -- coming up ------------------------------------------------------------------------------
    def _connect(self, timeout: float) -> None:
        """sshd answers once systemd has started it: connect attempts until ``timeout``, with
        QEMU's and the kernel's health looked at between them (a panic at boot is a GuestDied
        with its console, not a long wait)."""
        from kharness.vm.ssh import SshUnanswered

        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BootTimeout(f"sshd in the guest did not answer within {timeout:g}s",
                                  self.console_text())
            try:
                # In slices: between them, a kernel that panicked or a QEMU that exited is seen.
                self.ssh.connect(min(left, 15.0))
                return
            except SshUnanswered as e:   # sshd not started yet: try again until the deadline
                if time.monotonic() >= deadline:
                    raise BootTimeout(f"sshd in the guest did not answer within {timeout:g}s ({e})",
                                      self.console_text()) from None

    def wait_ready(self, timeout: float) -> str:
        self._connect(timeout)
        # Every kernel message to the console from here on, as the busybox guest's /init does:
        # `quiet` kept the boot fast, and the console is the record that outlives sshd (a module's
        # pr_info before its panic). A restored guest was saved with this already done.
        self.release = self.ssh.run(f"echo {CONSOLE_LOGLEVEL} > /proc/sys/kernel/printk; uname -r",
                                    30.0).stdout.strip()
        self.boot_seconds = time.monotonic() - self._t0
        return self.release

    def wait_restored(self, timeout: float, release: str, monitor: Path | None = None) -> None:
        """A guest restored from a saved state answers SSH; ``monitor``: the QMP socket of one
        restored by an incoming migration, asked first whether it runs yet."""
        deadline = time.monotonic() + timeout
        if monitor is not None:
            from kharness.vm import qmp
            try:
                qmp.wait_running(monitor, timeout, self.check_alive)
            except InfraError as e:   # (a monitor that hung up: QEMU exiting, most likely)
                self.check_alive()
                raise BootTimeout(e.message, self.console_text()) from None
        self._connect(max(0.1, deadline - time.monotonic()))
        self.ssh.sessions = True   # saved with kh-agent and kh-serve in place (runner.distro_snapshot)
        self.release = release
        self.boot_seconds = time.monotonic() - self._t0

    def disconnect(self) -> None:
        """Close the SSH session (before a snapshot is saved: a restored guest gets a new one)."""
        self.ssh.close()

    # -- commands ---------------------------------------------------------------------------------
    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        try:
            return self.ssh.run(command, timeout, stdin)
        except CommandTimeout as e:
            self._dead_or(e)
            raise
        except GuestDied as e:
            # The connection dropped: a kernel that panicked takes sshd with it, and QEMU exits
            # (panic=-1, -no-reboot) a moment after the console printed why. Wait for that.
            deadline = time.monotonic() + DEATH_SETTLE
            while time.monotonic() < deadline:
                self.check_alive()
                time.sleep(0.1)
            raise GuestDied(e.message, self.console_text()) from None

    def _dead_or(self, e: GuestError) -> None:
        """A command that failed because the kernel panicked is the panic (from the console)."""
        self.check_alive()
        if not e.console_tail:
            e.console_tail = self.console_text()

    def put_file(self, path: str, data: bytes, timeout: float) -> None:
        self.ssh.put_file(path, data, timeout)

    def install_agent(self, agent: bytes, timeout: float) -> None:
        self.ssh.install_agent(agent, timeout)

    # -- the side channel, over a fresh SSH session ---------------------------------------------
    def sysrq(self, keys: str, settle: float = 1.0) -> str:
        before = self.console.received if self.console is not None else 0
        script = "; ".join(f"echo {k} > /proc/sysrq-trigger" for k in keys if k.isalnum())
        try:
            self.ssh.run(script, SIDE_TIMEOUT)
        except GuestError:
            pass
        time.sleep(settle)
        return self.console.since(before) if self.console is not None else ""

    def module_state(self, name: str, timeout: float = 5.0) -> str | None:
        import shlex

        try:
            r = self.ssh.run(f"cat /sys/module/{shlex.quote(name)}/initstate 2>/dev/null || echo gone",
                             max(timeout, SIDE_TIMEOUT))
        except GuestError:
            return None
        return r.stdout.strip() or None

    def shutdown(self, timeout: float = 10.0) -> None:
        if self._ssh is None:   # (never connected: nothing to ask, close() stops QEMU)
            return
        try:
            self.ssh.run("systemctl poweroff --no-block", 10.0)
            if self.proc is not None:
                self.proc.wait(timeout=timeout)
        except Exception:
            pass

    def close(self) -> None:
        try:
            if self._ssh is not None:
                self._ssh.close()
        finally:
            super().close()
