"""One QEMU guest from start to teardown.

The QEMU implementation of the :class:`kharness.guest.Guest` protocol: commands on the command
channel (``vm/channel.py``), the kernel console with its side channel (``sysrq``,
``module_state``), and QEMU's own lifecycle (``start``, ``wait_ready``, ``wait_restored``, ``argv``).
The protocol's agent calls (``put_file``, ``dmesg_since``, ``health``) come from
:class:`kharness.agent_client.AgentCalls` over ``run``; docs/protocol.md specifies the wire.

``with Guest(...) as g:`` guarantees the QEMU process is killed and the channel FIFOs removed on
every path out: success, failure, timeout, exception and Ctrl-C. QEMU also gets
``PR_SET_PDEATHSIG`` so it dies with the harness even if the harness is SIGKILLed.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from kharness.agent_client import AgentCalls
from kharness.targets import TargetProfile
from kharness.vm.channel import CommandChannel, CommandResult
from kharness.vm.console import ConsoleLog
from kharness.vm.errors import BootTimeout, CommandTimeout, GuestDied, QemuStartError
from kharness.vm.qemu import BootSpec, build_argv

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _fifo_pair(base: Path) -> tuple[int, int]:
    """FIFOs ``base.in`` (host writes) and ``base.out`` (host reads). Opened O_RDWR so that
    neither open blocks and no EOF is seen while QEMU starts or restarts its side."""
    for suffix in (".in", ".out"):
        os.mkfifo(str(base) + suffix, 0o600)
    wfd = os.open(str(base) + ".in", os.O_RDWR)
    rfd = os.open(str(base) + ".out", os.O_RDWR)
    return rfd, wfd


class Guest(AgentCalls):
    def __init__(self, profile: TargetProfile, boot: BootSpec, workdir: Path, accel: str = "tcg",
                 extra_args: tuple[str, ...] = ()):
        self.profile = profile
        self.boot = boot
        self.workdir = workdir
        self.accel = accel
        self.argv = build_argv(profile, boot, workdir, accel, extra_args)
        self.proc: subprocess.Popen | None = None
        self.console: ConsoleLog | None = None
        self.channel: CommandChannel | None = None
        self.release: str | None = None
        self.boot_seconds: float | None = None
        self._fds: list[int] = []
        self._stderr = None
        self.pass_fds: tuple[int, ...] = ()   # open files QEMU inherits (an incoming migration's state)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        con_r, con_w = _fifo_pair(self.workdir / "con")
        cmd_r, cmd_w = _fifo_pair(self.workdir / "cmd")
        self._fds = [con_r, con_w, cmd_r, cmd_w]
        self.console = ConsoleLog(con_r, con_w, self.workdir / "console.log")
        self.channel = CommandChannel(cmd_r, cmd_w, self.workdir / "channel.log")
        self._stderr = open(self.workdir / "qemu.stderr", "wb")
        self._t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                         stderr=self._stderr, start_new_session=True,
                                         preexec_fn=_die_with_parent, pass_fds=self.pass_fds)
        except OSError as e:
            raise QemuStartError(f"cannot start {self.argv[0]}: {e}") from e

    def qemu_stderr(self) -> str:
        try:
            return (self.workdir / "qemu.stderr").read_text(errors="replace").strip()
        except OSError:
            return ""

    def check_alive(self) -> None:
        """Raise :class:`GuestDied` if the kernel panicked or QEMU exited."""
        assert self.proc and self.console
        if self.console.panic_at is not None:
            # Give the panic report a moment to reach the console before reporting it.
            deadline = self.console.panic_at + 1.0
            while time.monotonic() < deadline and self.proc.poll() is None:
                time.sleep(0.05)
            time.sleep(0.1)
            raise GuestDied("the kernel panicked", self.console.text(), panic=True)
        rc = self.proc.poll()
        if rc is not None:
            time.sleep(0.1)
            if self.console.panic_at is not None:
                raise GuestDied("the kernel panicked", self.console.text(), panic=True)
            err = self.qemu_stderr()
            if self.release is None and rc != 0:
                raise QemuStartError(f"QEMU exited with status {rc}: {err.splitlines()[-1] if err else 'no message'}",
                                     self.console.text())
            raise GuestDied(f"QEMU exited (status {rc}){': ' + err.splitlines()[-1] if err else ''}",
                            self.console.text())

    def wait_ready(self, timeout: float) -> str:
        assert self.channel
        try:
            self.release = self.channel.wait_ready(timeout, self.check_alive)
        except CommandTimeout:
            raise BootTimeout(f"the guest did not come up within {timeout:g}s", self.console.text()) from None
        self.boot_seconds = time.monotonic() - self._t0
        return self.release

    def wait_restored(self, timeout: float, release: str) -> None:
        """After ``-loadvm`` the guest is already at its command loop: no ready line comes, so the
        first command is the handshake."""
        assert self.channel
        try:
            self.channel.run("true", timeout, self.check_alive)
        except CommandTimeout:
            raise BootTimeout(f"the restored guest did not answer within {timeout:g}s", self.console.text()) from None
        self.release = release
        self.boot_seconds = time.monotonic() - self._t0

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        assert self.channel
        return self.channel.run(command, timeout, self.check_alive, stdin)

    def console_text(self, last: int = 32768) -> str:
        """The last ``last`` bytes of the kernel console ("" before the guest starts)."""
        return self.console.text(last) if self.console is not None else ""

    def sysrq(self, keys: str, settle: float = 1.0) -> str:
        """Ask the kernel for diagnostics over the console (works while the command shell is
        stuck) and return what the console printed meanwhile."""
        assert self.console
        before = self.console.received
        for k in keys:
            self.console.send(f"sysrq-{k}\n")
        time.sleep(settle)
        return self.console.since(before)

    def console_mark(self) -> int:
        return self.console.received if self.console is not None else 0

    def console_since(self, mark: int) -> str:
        return self.console.since(mark) if self.console is not None else ""

    def module_state(self, name: str, timeout: float = 5.0) -> str | None:
        """A module's ``initstate`` (``live``, ``coming``, ``going``; ``gone`` when it is not
        loaded) as the guest reports it over the console, or None if the console does not answer."""
        assert self.console
        nonce = f"{time.monotonic_ns() % 10**9}"
        self.console.send(f"kh-initstate-{nonce}-{name}\n")
        pattern = re.compile(rf"kh-initstate {nonce} {re.escape(name)} (\w+)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(self.console.text(65536))
            if m:
                return m.group(1)
            time.sleep(0.05)
        return None

    def shutdown(self, timeout: float = 10.0) -> None:
        """The orderly end: ask the guest to power off and wait for QEMU to exit."""
        if self.proc is None or self.proc.poll() is not None or self.channel is None:
            return
        try:
            if self.channel.bye():   # a guest that does not take the request will not power off
                self.proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        """Kill QEMU (its whole process group), stop the console thread, close every fd."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.console is not None:
            self.console.close()
        if self.channel is not None:
            self.channel.close()
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._stderr is not None:
            self._stderr.close()
        for name in ("con.in", "con.out", "cmd.in", "cmd.out"):
            try:
                (self.workdir / name).unlink()
            except OSError:
                pass

    def __enter__(self) -> "Guest":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
