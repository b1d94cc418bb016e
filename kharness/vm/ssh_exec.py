"""One command over an SSH exec channel: how it is wrapped, read, and killed past its deadline.

The remote side is any sshd, so the command line a guest command becomes must work whatever the
login shell is, and must give the host a handle on everything the command starts:

- ``sh -c 'WRAP'`` (``sudo -n sh -c 'WRAP'`` for a user other than root): the login shell only
  starts ``sh``; ``sudo -n`` never prompts, it fails at once when it would need a password.
- WRAP first prints the shell's process group on stderr behind a marker (``\\x1eKHPG <pgid>``);
  the host strips it (with anything sudo printed before it). Its presence also proves the root
  shell started: a missing marker after a failed ``sudo`` is sudo's refusal, whatever language
  sudo speaks.
- WRAP then runs the guest command in a fresh ``sh -c`` with cwd ``/`` and /kh/.bin first in PATH,
  as the QEMU guest runs it (init.sh: ``cd / && exec sh /tmp/.kh.sh``), so a command behaves the same on
  both. Not exec'd: the wrapper reports a killed command's signal as 128+N in the exit status
  (sshd would report it as an exit-signal, which paramiko drops).
- Past the deadline a second channel sends SIGKILL to that process group: closing the channel
  alone leaves a ``sleep 1000`` running (nothing signals a command whose session ends).

Outputs are capped like the QEMU channel's (KH_MAX bytes kept, the full size counted) and decoded
the same way (UTF-8, undecodable bytes replaced), so checks read the same text on every guest.
"""

from __future__ import annotations

import re
import select
import shlex
import socket
import time
from dataclasses import dataclass

import paramiko

REMOTE_DIR = "/kh"                    # everything kharness puts on a remote (kh-agent in /kh/.bin)
REMOTE_TMP_GLOB = "/tmp/.kh.*"        # kh-agent's kernel-log cursors and scratch files
KH_MAX = 1 << 20                      # bytes of each output kept (images/init.sh's KH_MAX)
_MARK = b"\x1eKHPG "
_MARK_HEAD = 64 << 10                 # the marker comes within this much stderr (sudo's lecture at most)
_MARK_RE = re.compile(rb"\x1eKHPG (\d*)\n")
POLL = 0.05                           # select wakes on data at once; this only bounds a quiet wait
KILL_TIMEOUT = 3.0                    # for the kill command after a timeout (the peer may be dead too)
CHUNK = 32768


def wrap(command: str, root: bool, remote_dir: str = REMOTE_DIR) -> str:
    """The exec request's command line for guest ``command``."""
    inner = ("read -r _ _ _ _ kh_pg _ 2>/dev/null </proc/$$/stat; printf '\\036KHPG %s\\n' \"$kh_pg\" >&2; "
             f"unset kh_pg; cd / && PATH={shlex.quote(remote_dir + '/.bin')}:$PATH; export PATH; "
             # eval, not another `sh -c`: the same shell runs the command (a process start fewer,
             # tens of milliseconds of every command under TCG); `exit` in it still ends it.
             f"eval {shlex.quote(command)}")
    return as_root(inner, root)


def as_root(script: str, root: bool) -> str:
    line = f"sh -c {shlex.quote(script)}"
    return line if root else f"sudo -n {line}"


def kill_line(pgid: int, root: bool) -> str:
    # `kill -KILL -PG` is the form dash, bash and busybox all take (dash and busybox reject
    # `kill -KILL -- -PG`).
    return as_root(f"kill -KILL -{int(pgid)}", root)


def split_marker(err: bytes) -> tuple[int | None, bool, bytes]:
    """(process group, whether the marker came, the command's own stderr) from the raw stderr."""
    m = _MARK_RE.search(err, 0, _MARK_HEAD + len(_MARK) + 24)
    if not m:
        return None, False, err
    pg = int(m.group(1)) if m.group(1) else None
    return pg, True, err[m.end():]


class Capped:
    """The first ``cap`` bytes of a stream and its full size."""

    def __init__(self, cap: int):
        self.cap = cap
        self.data = bytearray()
        self.size = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += data[:room]


@dataclass
class Raw:
    """What came back on one channel: rc None when the channel closed without an exit status."""
    rc: int | None
    out: Capped
    err: Capped
    done: bool          # the command finished (else the deadline passed)
    dropped: bool       # the connection died under it


DRAIN_GRACE = 10.0   # after the exit status, how long the rest of the output may take to arrive


def collect(chan: paramiko.Channel, transport: paramiko.Transport, stdin: bytes, deadline: float) -> Raw:
    """Feed ``stdin`` (then EOF) and read both outputs until the exit status or ``deadline``.
    Input is written as the channel takes it, interleaved with reading, so a command that writes
    a lot before reading its input cannot deadlock with us."""
    out, err = Capped(KH_MAX), Capped(KH_MAX + _MARK_HEAD)
    pending = memoryview(stdin)
    chan.setblocking(False)
    if not pending:
        chan.shutdown_write()
    while True:
        _drain(chan, out, err)
        if chan.exit_status_ready():
            # sshd may send the exit status before the last of the output (measured: a 200 KiB
            # output cut to 139 KiB): read on until the output's end (EOF) or the channel closes.
            grace = min(deadline, time.monotonic() + DRAIN_GRACE)
            while not (chan.eof_received or chan.closed) and time.monotonic() < grace:
                select.select([chan], [], [], POLL)
                _drain(chan, out, err)
            _drain(chan, out, err)
            if chan.closed and chan.exit_status == -1:   # no status: a signal, or a dead connection
                return Raw(None, out, err, True, _settled_dead(transport))
            return Raw(chan.recv_exit_status(), out, err, True, False)
        if pending and chan.send_ready():
            try:
                n = chan.send(pending[:CHUNK])
            except socket.timeout:
                n = 0
            pending = pending[n:]
            if not pending:
                chan.shutdown_write()
        left = deadline - time.monotonic()
        if left <= 0:
            return Raw(None, out, err, False, not transport.is_active())
        # Wakes on output or close; a pending write is retried after a short wait.
        select.select([chan], [], [], min(left, 0.005 if pending else POLL))


def _drain(chan: paramiko.Channel, out: Capped, err: Capped) -> None:
    while chan.recv_ready():
        data = chan.recv(65536)
        if not data:
            break
        out.add(data)
    while chan.recv_stderr_ready():
        data = chan.recv_stderr(65536)
        if not data:
            break
        err.add(data)


def _settled_dead(transport: paramiko.Transport, settle: float = 0.5) -> bool:
    """Whether the connection is dead. paramiko closes the channels of a dying connection a moment
    before it marks the transport inactive, so a channel closed without a status waits for that."""
    end = time.monotonic() + settle
    while transport.is_active():
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)
    return True


def decode(data: bytes | bytearray) -> str:
    """As kharness.vm.channel decodes the QEMU guest's outputs."""
    return bytes(data).decode("utf-8", "replace")


def kill_group(transport: paramiko.Transport, pgid: int | None, root: bool) -> None:
    """SIGKILL a timed-out command's process group, best effort within KILL_TIMEOUT."""
    if pgid is None or pgid < 2 or not transport.is_active():   # never `kill -KILL -1` (everything)
        return
    deadline = time.monotonic() + KILL_TIMEOUT
    try:
        chan = transport.open_session(timeout=KILL_TIMEOUT)
        try:
            chan.exec_command(kill_line(pgid, root))
            collect(chan, transport, b"", deadline)
        finally:
            chan.close()
    except (paramiko.SSHException, OSError, EOFError):
        pass
