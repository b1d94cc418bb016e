"""Cell processes under a deadline: each runs in its own process group, and one that outlives its
deadline is killed with everything it started (QEMU, compilers), not just the direct child."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from contextlib import suppress
from pathlib import Path
from typing import IO

GRACE = 5.0   # seconds between SIGTERM and SIGKILL, and the most a killed process is waited for


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from /proc: a build tool may have moved to a
    process group of its own, out of reach of a group kill."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces and parentheses: read after the last ")".
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue   # gone meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _signal(p: subprocess.Popen, pids: list[int], sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)   # the cell's group: its own pid (start_new_session)
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait(p: subprocess.Popen, seconds: float) -> None:
    with suppress(subprocess.TimeoutExpired):
        p.wait(timeout=seconds)


def kill_tree(p: subprocess.Popen, grace: float = GRACE) -> None:
    """SIGTERM the process, its group and its descendants; SIGKILL whatever is left after ``grace``."""
    pids = descendants(p.pid)   # before anything dies: orphans are re-parented out of sight
    _signal(p, pids, signal.SIGTERM)
    _wait(p, grace)
    _signal(p, pids, signal.SIGKILL)
    _wait(p, grace)   # a process stuck in uninterruptible sleep cannot be waited for any longer


class Supervisor:
    """Runs cell commands with a deadline each and remembers the live ones, so an interrupted
    matrix can stop them: in groups of their own, they no longer see the terminal's Ctrl-C."""

    def __init__(self, grace: float = GRACE):
        self.grace = grace
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run(self, argv: list[str], log: IO, deadline: float, env: dict | None = None) -> int | None:
        """The command's exit code, or None if it was killed at its deadline."""
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                             start_new_session=True)
        with self._lock:
            self._live.add(p)
        try:
            return p.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            kill_tree(p, self.grace)
            return None
        finally:
            with self._lock:
                self._live.discard(p)

    def interrupt_all(self) -> None:
        """Ctrl-C for every live cell (a `kharness run` then tears its guest down), then kill what
        has not stopped within the grace period."""
        with self._lock:
            live = list(self._live)
        for p in live:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGINT)
        for p in live:
            _wait(p, self.grace)
            if p.poll() is None:
                kill_tree(p, self.grace)
