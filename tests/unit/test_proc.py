"""Unit tests for kharness.proc: a timed-out command takes its whole process group with it."""

from __future__ import annotations

import os
import time

import pytest

from bounded import bounded

from kharness import proc
from kharness.errors import InfraError
from kharness.proc import ProcessTimeout


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for a reaper has stopped running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _gone(pid: int, within: float = 20.0) -> bool:
    """True once ``pid`` has stopped running. A killed process closes its files (which is what
    lets the killer's read of the pipe end) a moment before it finishes exiting, so give it that
    moment; a survivor (the sleep 300 of the old behaviour) is still running at the end."""
    end = time.monotonic() + within
    while _alive(pid):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


_bounded = bounded


def test_run_captures_output_and_status():
    p = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")


def test_run_merges_stderr_and_feeds_input():
    p = proc.run(["sh", "-c", "cat; echo err >&2"], timeout=30, input="in\n", merge_stderr=True)
    assert (p.returncode, p.stdout, p.stderr) == (0, "in\nerr\n", "")


def test_timeout_kills_the_grandchild_holding_the_pipe():
    # The shell's child `sleep` inherits stdout: subprocess.run(timeout=) kills the shell only,
    # and the sleep lives on, holding the pipe.
    box = _bounded(lambda: proc.run(["sh", "-c", "sleep 300 & echo $!; wait"], timeout=1,
                                    what="the test command"))
    err = box.get("error")
    assert isinstance(err, ProcessTimeout), box
    assert isinstance(err, InfraError)
    assert err.message == "the test command did not finish within 1s (it was stopped)"
    grandchild = int(err.stdout.split()[0])
    assert _gone(grandchild), f"the grandchild sleep (pid {grandchild}) survived the timeout"


def test_interrupt_kills_the_group(monkeypatch):
    # Ctrl-C reaches the harness only (the command runs in a session of its own): the group
    # must be stopped on the way out.
    started = []
    real_popen = proc.subprocess.Popen

    class Popen(real_popen):
        def communicate(self, input=None, timeout=None):
            if not started:
                started.append(self.pid)
                # Let the shell start its sleep before the "Ctrl-C".
                for _ in range(200):
                    kids = _children(self.pid)
                    if kids:
                        started.extend(kids)
                        break
                    time.sleep(0.05)
                raise KeyboardInterrupt
            return super().communicate(input, timeout)

    monkeypatch.setattr(proc.subprocess, "Popen", Popen)
    box = _bounded(lambda: proc.run(["sh", "-c", "sleep 300; true"], timeout=300))
    assert isinstance(box.get("error"), KeyboardInterrupt)
    assert len(started) == 2, "the shell never started its child"
    assert all(_gone(pid) for pid in started)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_missing_program_raises_oserror():
    with pytest.raises(FileNotFoundError):
        proc.run(["/nonexistent/kharness-no-such-tool"], timeout=5)
