"""kharness.vm.qmp's migration and wait for a running guest, against a real QEMU (``-M none``: no
guest, no kernel, milliseconds to start): what runner.distro_snapshot saves and restores with."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from kharness.vm import qmp

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None, reason="needs qemu-system-x86_64")


@pytest.fixture
def sockdir():
    # A short directory: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="kh-qmp-") as d:
        yield Path(d)


class Qemu:
    def __init__(self, sock: Path, *args: str, pass_fds: tuple[int, ...] = ()):
        self.sock = sock
        self.proc = subprocess.Popen([QEMU, "-M", "none", "-display", "none", "-nodefaults",
                                      "-qmp", f"unix:{sock},server=on,wait=off", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, pass_fds=pass_fds)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"QEMU exited: {self.proc.stderr.read().decode()[-300:]}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def qemu():
    started: list[Qemu] = []

    def start(*args, **kw) -> Qemu:
        started.append(Qemu(*args, **kw))
        return started[-1]

    yield start
    for q in started:
        q.close()


def test_wait_running_returns_when_the_guest_resumes(sockdir, qemu):
    # paused, as a guest still loading its state; a monitor takes one client: cont on a second one
    q = qemu(sockdir / "q.sock", "-S", "-qmp", f"unix:{sockdir / 'ctl.sock'},server=on,wait=off")
    threading.Timer(0.5, lambda: qmp.hmp(sockdir / "ctl.sock", "cont", 30)).start()
    t = time.monotonic()
    qmp.wait_running(q.sock, 60, q.alive)
    assert time.monotonic() - t >= 0.4   # (it waited for the RESUME)


def test_wait_running_gives_up_on_a_guest_that_never_runs(sockdir, qemu):
    q = qemu(sockdir / "q.sock", "-S")
    with pytest.raises(qmp.QmpTimeout) as e:
        qmp.wait_running(q.sock, 1.0, q.alive)
    assert "did not start running within 1s" in e.value.message


def test_wait_running_stops_when_qemu_is_gone(sockdir, qemu):
    q = qemu(sockdir / "q.sock", "-S")
    q.close()
    with pytest.raises(RuntimeError, match="QEMU exited"):
        qmp.wait_running(q.sock, 60, q.alive)


def test_a_migration_to_a_file_restores_from_it_open_and_runs(sockdir, qemu):
    src = qemu(sockdir / "src.sock")
    qmp.wait_running(src.sock, 60, src.alive)   # (its monitor is up)
    state = sockdir / "state with space.bin"
    qmp.migrate(src.sock, state, 60)
    assert state.stat().st_size > 0
    fd = os.open(state, os.O_RDONLY)
    try:
        dst = qemu(sockdir / "dst.sock", "-incoming", f"fd:{fd}", pass_fds=(fd,))
    finally:
        os.close(fd)
    qmp.wait_running(dst.sock, 60, dst.alive)   # the source ran: so does the restored one


def test_a_migration_that_cannot_write_says_why(sockdir, qemu):
    src = qemu(sockdir / "src.sock")
    qmp.wait_running(src.sock, 60, src.alive)
    with pytest.raises(qmp.InfraError) as e:
        qmp.migrate(src.sock, sockdir / "no" / "state", 60)
    assert e.value.message == f"cannot save the VM state to {sockdir / 'no' / 'state'}: No such file or directory"


def test_a_migration_qemu_cannot_finish_says_why(sockdir, qemu):
    src = qemu(sockdir / "src.sock")
    qmp.wait_running(src.sock, 60, src.alive)
    with pytest.raises(qmp.InfraError) as e:
        qmp.migrate(src.sock, Path("/dev/full"), 60)   # every write: ENOSPC
    assert e.value.message.startswith("saving the VM state to /dev/full failed: "), e.value.message
