"""The kernel log of an SSH guest, streamed on an exec channel of its own.

An SSH guest has no serial console to read, so its stand-in is ``dmesg -w`` (util-linux: the log
since boot, then each new message, as ``[   12.345678] text`` lines like a QEMU guest's console),
or ``cat /dev/kmsg`` where dmesg cannot follow (busybox), turned into the same form here. A daemon
thread reads it into a bounded buffer, which keeps what arrived before the connection died: the
last messages a board sent before it panicked.

The remote reader stops itself: the wrapper waits on its stdin and, when the host ends the channel
(or sshd drops the session), kills its own process group, so no ``dmesg -w`` is left on a board.
"""

from __future__ import annotations

import re
import select
import threading
from pathlib import Path

import paramiko

from kharness.vm.ssh_exec import as_root

TAIL = 256 << 10   # bytes kept in memory (as kharness.vm.console keeps for a QEMU guest)
CAP = 16 << 20     # bytes kept on disk
# `read` returns at EOF on stdin: the channel's end. `kill 0`: the whole group, dmesg included.
STREAM_SCRIPT = ("{ dmesg -w 2>/dev/null || exec cat /dev/kmsg; } & "
                 "read -r _; kill -TERM 0")
_KMSG_RE = re.compile(r"(\d+),(\d+),(\d+),[^;]*;(.*)")


def kmsg_to_dmesg(line: str) -> str | None:
    """A /dev/kmsg record ("6,339,5140900,-;text") as dmesg prints it ("[    5.140900] text");
    its continuation lines (" KEY=value") are dropped; other lines are kept as they are."""
    if line.startswith(" "):
        return None
    m = _KMSG_RE.fullmatch(line)
    if not m:
        return line
    usec = int(m.group(3))
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {m.group(4)}"


class LogStream:
    def __init__(self, transport: paramiko.Transport, root: bool, path: Path | None = None,
                 open_timeout: float = 10.0):
        self._lock = threading.Lock()
        self._tail = bytearray()
        self._partial = b""
        self._file = open(path, "ab") if path is not None else None   # the run directory's copy
        self._written = 0
        self.chan = transport.open_session(timeout=open_timeout)
        self.chan.exec_command(as_root(STREAM_SCRIPT, root))
        self._thread = threading.Thread(target=self._pump, name="kh-ssh-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                select.select([self.chan], [], [], 0.5)
                while self.chan.recv_stderr_ready():   # (sudo's or the shell's noise: not the log)
                    self.chan.recv_stderr(65536)
                if self.chan.recv_ready():
                    data = self.chan.recv(65536)
                    if not data:
                        break
                    self._feed(data)
                elif self.chan.closed or self.chan.eof_received:
                    break
        except (OSError, EOFError, paramiko.SSHException):
            pass
        if self._partial:
            self._feed(b"\n")

    def _feed(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        text = []
        for raw in lines:
            line = kmsg_to_dmesg(raw.decode("utf-8", "replace"))
            if line is not None:
                text.append(line + "\n")
        data = "".join(text).encode()
        with self._lock:
            self._tail += data
            if len(self._tail) > TAIL:
                del self._tail[: len(self._tail) - TAIL]
            if self._file is not None and self._written < CAP:
                self._file.write(data[: CAP - self._written])
                self._file.flush()
                self._written += len(data)

    def text(self, last: int = TAIL) -> str:
        with self._lock:
            return bytes(self._tail[-last:]).decode("utf-8", "replace")

    def close(self, timeout: float = 2.0) -> None:
        """End the remote reader (its stdin's EOF), then the channel; never raises."""
        try:
            self.chan.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        self._thread.join(timeout)
        try:
            self.chan.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
