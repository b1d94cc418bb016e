"""Unit tests for kharness.lock.file_lock: a busy lock is waited for, but not forever."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kharness.errors import InfraError
from kharness.lock import file_lock, holder

# Takes the lock, says so, and keeps it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from kharness.lock import file_lock
with file_lock(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held(tmp_path):
    lock = tmp_path / "entry.lock"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "held\n"
        yield lock, p
    finally:
        p.kill()
        p.wait(timeout=30)


def test_busy_lock_times_out_naming_lock_and_holder(held):
    lock, p = held
    start = time.monotonic()
    with pytest.raises(InfraError) as ei:
        with file_lock(lock, timeout=0.3):
            pytest.fail("took a lock another process holds")
    assert time.monotonic() - start >= 0.3
    msg = ei.value.message
    assert msg.startswith(f"timed out after 0.3s waiting for the lock {lock} (held by pid {p.pid}: ")
    assert "-c" in msg   # the holder's command line
    assert ei.value.hint


def test_lock_is_taken_once_the_holder_is_gone(held):
    lock, p = held
    p.stdin.close()
    p.wait(timeout=30)
    assert holder(lock) == "holder unknown"   # a holder clears its note when it lets go
    with file_lock(lock, timeout=30):
        assert holder(lock).startswith("held by pid ")


def test_holder_of_a_killed_process(tmp_path):
    lock = tmp_path / "x.lock"
    p = subprocess.Popen(["true"])
    p.wait()
    lock.write_text(f"{p.pid} kharness run\n")
    assert holder(lock) == f"last held by pid {p.pid}, which has exited"


def test_free_lock_is_taken_at_once(tmp_path):
    with file_lock(tmp_path / "sub" / "free.lock", timeout=0):
        pass
    with file_lock(tmp_path / "sub" / "free.lock", timeout=0):
        pass
