"""Cross-process file locks and atomic publication for the shared cache.

Several kharness processes (pytest-xdist workers, parallel matrix cells) share one cache. Every
cache entry is produced in a private temporary directory and published with an atomic
``rename``; producers of the same entry serialise on an ``flock`` so the work is done once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from kharness.errors import InfraError


# How long to wait for another process to finish producing a cache entry: longer than the
# longest legitimate hold (a kernel built from source, bounded by kernels.source.BUILD_TIMEOUT).
LOCK_TIMEOUT = 2 * 3600.0
_POLL_MAX = 0.5   # longest sleep between two attempts to take a busy lock


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing). Released if the process dies.

    Waits at most ``timeout`` seconds for the current holder, then raises InfraError naming the
    lock and, as far as it is known, who holds it. The holder's pid and command line are kept
    in the lock file while it is held, for that message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout)
        try:
            _describe_holder(fd)
            yield
        finally:
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    # flock has no timeout of its own: poll with a non-blocking attempt (backing off, so that
    # hour-long waits cost nothing) until the deadline.
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise InfraError(f"timed out after {timeout:g}s waiting for the lock {path} ({holder(path)})",
                             hint="another kharness process is still producing this cache entry: "
                                  "wait for it to finish, or stop it")
        time.sleep(min(pause, left))
        pause = min(pause * 2, _POLL_MAX)


def _describe_holder(fd: int) -> None:
    try:
        with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {cmd[:200]}\n".encode(), 0)
    except OSError:
        pass   # only informative: a read-only or full disk must not stop the work


def holder(path: Path) -> str:
    """Who holds the lock ``path``, as the holder wrote it down: ``held by pid N: <command>``."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, cmd = text.partition(" ")
    if not pid.isdigit():
        return "holder unknown"
    if not os.path.exists(f"/proc/{pid}"):
        return f"last held by pid {pid}, which has exited"
    return f"held by pid {pid}" + (f": {cmd}" if cmd else "")


@contextlib.contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """A temporary directory next to ``final``, renamed onto it on success, removed on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
