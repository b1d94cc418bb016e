"""Guest commands on ONE long-lived SSH exec channel: the command channel's protocol
(docs/protocol.md: run and put requests, framed base64 replies) spoken by ``kh-serve`` in the
guest, read on the host by the very :class:`kharness.vm.channel.CommandChannel` the QEMU guest
uses.

Why: an exec channel per command costs an SSH channel, an sshd session process and a login
shell: ~0.15-0.2 s under TCG (measured on the x86_64 distro guest), where a command on the busybox
guest's channel costs ~0.03 s. On the session a command is one kh-agent fork. Each command still
has its own deadline; one that misses it takes the session down (its process group is killed
over a second channel) and the next command opens a new session.

The channel is bridged to a socketpair by two threads, so that CommandChannel (pexpect on a file
descriptor) reads it as it reads QEMU's FIFOs.
"""

from __future__ import annotations

import select
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import paramiko

from kharness.vm import ssh_exec
from kharness.vm.channel import CommandChannel, CommandResult

OPEN_TIMEOUT = 30.0
SERVE = "kh-serve"   # in <remote_dir>/.bin, installed with kh-agent


class SessionLost(Exception):
    """The session's channel ended (the connection dropped, or sshd killed it)."""


class CommandSession:
    def __init__(self, transport: paramiko.Transport, root: bool, remote_dir: str, log_path: Path | None,
                 timeout: float = OPEN_TIMEOUT):
        deadline = time.monotonic() + timeout
        self.transport = transport
        self.root = root
        self.chan = transport.open_session(timeout=timeout)
        # Sourced by the shell the exec request starts (`.`), not run by a new one: a dash start
        # fewer (~25 ms under TCG), and the same process group that a kill ends.
        self.chan.exec_command(ssh_exec.wrap(f". {shlex.quote(remote_dir + '/.bin/' + SERVE)}", root, remote_dir))
        self.host, self._bridge = socket.socketpair()
        self._err = bytearray()
        self.closed = threading.Event()
        threading.Thread(target=self._from_guest, name="kh-ssh-session-out", daemon=True).start()
        threading.Thread(target=self._to_guest, name="kh-ssh-session-in", daemon=True).start()
        self.channel = CommandChannel(self.host.fileno(), self.host.fileno(), log_path)
        try:
            self.release = self.channel.wait_ready(max(0.1, deadline - time.monotonic()), self.check)
        except Exception:
            self.close()
            raise

    # -- the bridge ------------------------------------------------------------------------------
    def _from_guest(self) -> None:
        try:
            while True:
                if self.chan.recv_stderr_ready():
                    self._err += self.chan.recv_stderr(65536)
                if self.chan.recv_ready():
                    data = self.chan.recv(65536)
                    if not data:
                        break
                    self._bridge.sendall(data)
                    continue
                if self.chan.exit_status_ready() or self.chan.closed or not self.transport.is_active():
                    while self.chan.recv_ready():
                        self._bridge.sendall(self.chan.recv(65536))
                    break
                # The channel's fileno() turns readable when stdout data (or its end) arrives;
                # stderr (only the start marker, and kh-serve's own complaints) is read in passing.
                select.select([self.chan], [], [], 0.05)
        except OSError:
            pass
        finally:
            self.closed.set()
            try:
                self._bridge.shutdown(socket.SHUT_WR)   # the host side reads EOF
            except OSError:
                pass

    def _to_guest(self) -> None:
        try:
            while True:
                data = self._bridge.recv(65536)
                if not data:
                    break
                self.chan.sendall(data)
        except (OSError, EOFError, paramiko.SSHException):
            pass

    # -- commands ----------------------------------------------------------------------------------
    def check(self) -> None:
        if self.closed.is_set():
            raise SessionLost("the command session ended")

    def run(self, command: str, timeout: float, stdin: bytes = b"",
            check: Callable[[], None] | None = None) -> CommandResult:
        def both() -> None:
            if check is not None:
                check()
            self.check()

        return self.channel.run(command, timeout, both, stdin)

    @property
    def pgid(self) -> int | None:
        pg, _, _ = ssh_exec.split_marker(bytes(self._err))
        return pg

    def kill(self) -> None:
        """Kill the session's process group (after a command missed its deadline: it and the
        command stuck in it), best effort."""
        ssh_exec.kill_group(self.transport, self.pgid, self.root)
        self.close()

    def close(self) -> None:
        try:
            self.chan.close()
        except Exception:   # noqa: BLE001 - closing never raises
            pass
        self.channel.close() if hasattr(self, "channel") else None
        for s in (self.host, self._bridge):
            try:
                s.close()
            except OSError:
                pass
