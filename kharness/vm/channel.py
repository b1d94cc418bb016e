"""The command channel: run a shell command in the guest, get its exact stdout, stderr and status.

Host half of the protocol documented at the top of ``images/init.sh``. The guest side reads one
request per line from its own tty (never the kernel console) and answers with framed, base64
encoded outputs, so neither kernel messages nor tty processing can corrupt a result.
pexpect does the matching; the fds are the FIFO pair QEMU's ``pipe`` chardev reads and writes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import select
import time
from dataclasses import dataclass
from typing import Callable

import pexpect
from pexpect.fdpexpect import fdspawn

from kharness.vm.errors import CommandTimeout

READY_RE = re.compile(rb"\x1eKH-READY ([^\n]*)\n")
BYE = b"\x1eKH-BYE"
POLL = 0.1  # how often a wait looks at QEMU's and the kernel's health
SEND_TIMEOUT = 10.0  # for a write with no deadline of its own (``bye``)


@dataclass(frozen=True)
class CommandResult:
    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float
    stdout_size: int      # untruncated sizes, as the guest measured them
    stderr_size: int

    @property
    def truncated(self) -> bool:
        return len(self.stdout.encode()) < self.stdout_size or len(self.stderr.encode()) < self.stderr_size


class _SendStalled(Exception):
    """The peer did not take the whole request before the deadline."""


class _FifoSpawn(fdspawn):
    """fdspawn reading one FIFO and writing another (QEMU's ``pipe`` chardev uses two).

    The write end is non-blocking: the host holds each FIFO read-write (see machine._fifo_pair),
    so a guest that stops reading never causes EPIPE, and a blocking write of a request larger
    than the pipe (module delivery sends ~87 KiB lines) would wait forever."""

    def __init__(self, read_fd: int, write_fd: int, **kw):
        super().__init__(read_fd, **kw)
        self.write_fd = write_fd
        os.set_blocking(write_fd, False)

    def send(self, s, deadline: float | None = None, check: Callable[[], None] = lambda: None):  # noqa: D401 - pexpect API
        """Write all of ``s`` by ``deadline`` (time.monotonic), calling ``check`` while the pipe
        is full; raise :class:`_SendStalled` past the deadline (default: SEND_TIMEOUT from now)."""
        data = s.encode() if isinstance(s, str) else s
        if deadline is None:
            deadline = time.monotonic() + SEND_TIMEOUT
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.write_fd, view):]
                continue
            except BlockingIOError:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                raise _SendStalled(f"{len(view)} of {len(data)} bytes unsent")
            select.select([], [self.write_fd], [], min(POLL, left))
            check()
        return len(data)


def parse_framed(buf: bytes, cid: int) -> tuple[str, int, str, int]:
    """stdout, its size, stderr, its size from the frames of command ``cid``."""
    m = re.search(rb"\x1eKHO %d (\d+)\n(.*?)\x1eKHR %d (\d+)\n(.*)\Z" % (cid, cid), buf, re.S)
    if not m:
        raise ValueError(f"malformed reply to command {cid}: {buf[-200:]!r}")

    def dec(b: bytes) -> str:
        try:
            return base64.b64decode(b"".join(b.split()), validate=True).decode("utf-8", "replace")
        except binascii.Error as e:
            raise ValueError(f"corrupt output of command {cid}: {e}") from e

    return dec(m.group(2)), int(m.group(1)), dec(m.group(4)), int(m.group(3))


class CommandChannel:
    def __init__(self, read_fd: int, write_fd: int, log_path=None):
        self._log = open(log_path, "ab") if log_path else None
        self.child = _FifoSpawn(read_fd, write_fd, timeout=POLL, maxread=65536,
                                searchwindowsize=None, logfile=self._log)
        self.child.delaybeforesend = None   # pexpect's 50 ms default makes bulk input crawl
        self._next = 1

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def _wait(self, pattern: re.Pattern, deadline: float, check: Callable[[], None], what: str, timeout: float):
        """Expect ``pattern`` by ``deadline``, calling ``check`` (which raises if the guest died)
        between polls."""
        while True:
            try:
                self.child.expect(pattern, timeout=POLL)
                return self.child.match
            except pexpect.TIMEOUT:
                check()
                if time.monotonic() > deadline:
                    raise CommandTimeout(f"{what} did not finish within {timeout:g}s") from None

    def wait_ready(self, timeout: float, check: Callable[[], None]) -> str:
        m = self._wait(READY_RE, time.monotonic() + timeout, check, "boot", timeout)
        return m.group(1).decode(errors="replace").strip()

    def run(self, command: str, timeout: float, check: Callable[[], None], stdin: bytes = b"") -> CommandResult:
        """``command`` in the guest; ``stdin``, when given, is its standard input (a ``put``
        request: the bytes follow the request line, and the guest reads them in bulk)."""
        cid = self._next
        self._next += 1
        payload = base64.b64encode(command.encode()).decode()
        start = time.monotonic()
        deadline = start + timeout   # one deadline for sending the request and for the answer
        shown = command if len(command) <= 80 else command[:77] + "..."
        if stdin:
            data = base64.b64encode(stdin)
            request = f"put {cid} {len(data)} {payload}\n".encode() + data
        else:
            request = f"run {cid} {payload}\n".encode()
        try:
            self.child.send(request, deadline, check)
        except _SendStalled as e:
            raise CommandTimeout(f"command {shown!r} did not finish within {timeout:g}s "
                                 f"(the guest stopped reading its input: {e})") from None
        end_re = re.compile(rb"\x1eKHE %d (-?\d+)\r?\n" % cid)
        m = self._wait(end_re, deadline, check, f"command {shown!r}", timeout)
        rc = int(m.group(1))
        out, out_size, err, err_size = parse_framed(self.child.before, cid)
        return CommandResult(command, rc, out, err, time.monotonic() - start, out_size, err_size)

    def bye(self, timeout: float = 2.0) -> bool:
        """Ask the guest to power off; False if it does not even take the request."""
        try:
            self.child.send("bye\n", time.monotonic() + timeout)
            return True
        except _SendStalled:
            return False
