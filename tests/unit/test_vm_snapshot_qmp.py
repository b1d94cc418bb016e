"""Unit tests for kharness.vm.qmp and the QMP part of kharness.vm.snapshot: a monitor that
accepts and never answers costs its deadline, not forever, and the snapshot lock is let go."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from bounded import bounded

from kharness.errors import InfraError
from kharness.lock import file_lock
from kharness.vm import qmp, snapshot
from kharness.vm.qemu import BootSpec


_bounded = bounded


class FakeMonitor:
    """A unix-socket QMP server. ``mute``: accept and never say a word. Otherwise greet, accept
    capabilities, and answer human-monitor-command with ``hmp_reply`` (after an event)."""

    def __init__(self, path: Path, mute: bool, hmp_reply: dict | None = None):
        self.path = path
        self.mute = mute
        self.hmp_reply = hmp_reply or {"return": ""}
        self.requests: list[dict] = []
        self.accepted = threading.Event()
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(path))
        self._srv.listen(4)
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self._srv.accept()
        except OSError:
            return
        self._conns.append(conn)
        self.accepted.set()
        if self.mute:
            return   # holds the connection open, says nothing
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        # QMP is a stream of JSON values (qemu.qmp sends no newline after each): decode as they come.
        buf, dec = "", json.JSONDecoder()
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data.decode()
            while buf.strip():
                try:
                    req, end = dec.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                self.requests.append(req)
                if req["execute"] == "qmp_capabilities":
                    reply = {"return": {}}
                else:
                    conn.sendall(b'{"event": "STOP", "timestamp": {"seconds": 0, "microseconds": 0}}\r\n')
                    reply = dict(self.hmp_reply)
                if "id" in req:   # QMP echoes an id only when the request had one
                    reply["id"] = req["id"]
                conn.sendall(json.dumps(reply).encode() + b"\r\n")

    def close(self) -> None:
        for c in self._conns:
            c.close()
        self._srv.close()


@pytest.fixture
def sockdir():
    # A short directory: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="kh-qmp-") as d:
        yield Path(d)


def test_hmp_over_a_working_monitor(sockdir):
    mon = FakeMonitor(sockdir / "qmp.sock", mute=False, hmp_reply={"return": "saved\r\n"})
    try:
        assert qmp.hmp(sockdir / "qmp.sock", "savevm kh-ready", 30) == "saved\r\n"
        assert [r["execute"] for r in mon.requests] == ["qmp_capabilities", "human-monitor-command"]
        assert mon.requests[1]["arguments"] == {"command-line": "savevm kh-ready"}
    finally:
        mon.close()


def test_hmp_error_is_an_infra_error(sockdir):
    mon = FakeMonitor(sockdir / "qmp.sock", mute=False,
                      hmp_reply={"error": {"class": "GenericError", "desc": "no block device"}})
    try:
        with pytest.raises(InfraError) as ei:
            qmp.hmp(sockdir / "qmp.sock", "savevm kh-ready", 30)
        assert ei.value.message == "QEMU refused `savevm kh-ready`: no block device"
    finally:
        mon.close()


def test_hmp_to_a_silent_monitor_times_out(sockdir):
    mon = FakeMonitor(sockdir / "qmp.sock", mute=True)
    try:
        box = _bounded(lambda: qmp.hmp(sockdir / "qmp.sock", "savevm kh-ready", 0.5))
        err = box.get("error")
        assert isinstance(err, qmp.QmpTimeout), box
        assert isinstance(err, InfraError)
        assert err.message == "QEMU's monitor did not answer `savevm kh-ready` within 0.5s"
        assert mon.accepted.is_set()
    finally:
        mon.close()


def test_hmp_without_a_monitor(sockdir):
    with pytest.raises(InfraError) as ei:
        qmp.hmp(sockdir / "none.sock", "savevm kh-ready", 5)
    assert ei.value.message.startswith(f"cannot talk to QEMU's monitor at {sockdir / 'none.sock'} (`savevm kh-ready`): ")


class _SilentGuest:
    """Stands in for a QEMU guest whose monitor accepts and never answers."""

    instances: list["_SilentGuest"] = []

    def __init__(self, profile, boot, run_dir, accel, extra):
        qmp_arg = extra[extra.index("-qmp") + 1]
        self.sock = Path(qmp_arg.split(":", 1)[1].split(",", 1)[0])
        self.monitor = None
        self.closed = False
        _SilentGuest.instances.append(self)

    def start(self):
        self.monitor = FakeMonitor(self.sock, mute=True)

    def wait_ready(self, timeout):
        return "6.1.0-fake"

    def close(self):
        self.closed = True
        self.monitor.close()


def test_snapshot_save_with_a_silent_monitor_fails_and_lets_go(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(snapshot, "snapshot_key", lambda *a, **k: "0123456789abcdef")
    monkeypatch.setattr(snapshot, "_create_image", lambda qcow: qcow.write_bytes(b"qcow"))
    monkeypatch.setattr(snapshot, "Guest", _SilentGuest)
    monkeypatch.setattr(snapshot, "QMP_TIMEOUT", 0.5)
    _SilentGuest.instances.clear()
    profile = SimpleNamespace(name="fake")
    boot = BootSpec(tmp_path / "vmlinux", tmp_path / "initrd")

    box = _bounded(lambda: snapshot.ensure(profile, boot, "tcg", boot_timeout=0.1))
    err = box.get("error")
    assert isinstance(err, InfraError), box
    assert err.message == "QEMU's monitor did not answer `savevm kh-ready` within 0.5s"
    (guest,) = _SilentGuest.instances
    assert guest.closed, "QEMU was not stopped"
    assert guest.monitor.accepted.is_set()
    assert not guest.sock.parent.exists(), "the run directory was left behind"
    # The lock other workers wait on is free again, and nothing was published.
    snaps = tmp_path / "cache" / "snapshots"
    with file_lock(snaps / "fake-0123456789abcdef.lock", timeout=0):
        pass
    assert sorted(p.name for p in snaps.iterdir()) == ["fake-0123456789abcdef.lock"]
