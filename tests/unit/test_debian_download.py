"""Unit tests for kharness.debian.download with ``file://`` URLs (urllib reads them: no network)
and a misbehaving HTTP server on 127.0.0.1: one that sends more than promised, one that trickles,
one that stops short, one that resets the connection."""

from __future__ import annotations

import hashlib
import http.server
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from kharness import ui
from kharness.debian import download
from kharness.debian.download import fetch_bytes, fetch_verified, sha256_file
from kharness.errors import InfraError

CONTENT = b"\x7fELF" + bytes(range(256)) * 40 + b"tail"
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def source(tmp_path) -> Path:
    src = tmp_path / "mirror" / "pool" / "pkg.deb"
    src.parent.mkdir(parents=True)
    src.write_bytes(CONTENT)
    return src


def _dest(tmp_path: Path) -> Path:
    d = tmp_path / "debs"
    d.mkdir(exist_ok=True)
    return d / f"{SHA}.deb"


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir() if not p.name.endswith(".lock"))


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_good_download(tmp_path, source):
    dest = _dest(tmp_path)
    got = fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT), label="pkg 1.0")
    assert got == dest
    assert dest.read_bytes() == CONTENT
    assert _leftovers(dest) == [dest.name]


def test_size_unknown_is_accepted(tmp_path, source):
    dest = _dest(tmp_path)
    fetch_verified(source.as_uri(), dest, sha256=SHA, size=None, label="pkg")
    assert dest.read_bytes() == CONTENT


def test_wrong_sha256(tmp_path, source):
    dest = _dest(tmp_path)
    bad = "0" * 64
    with pytest.raises(InfraError) as ei:
        fetch_verified(source.as_uri(), dest, sha256=bad, size=len(CONTENT), label="pkg 1.0")
    assert ei.value.message == f"SHA256 mismatch for pkg 1.0: got {SHA}, the index says {bad}: refusing it"
    assert not dest.exists()
    assert not dest.with_name(dest.name + ".part").exists()
    assert _leftovers(dest) == []


def test_wrong_size(tmp_path, source):
    dest = _dest(tmp_path)
    with pytest.raises(InfraError) as ei:
        fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT) + 1, label="pkg 1.0")
    assert ei.value.message == f"download of pkg 1.0 is {len(CONTENT)} bytes, the index says {len(CONTENT) + 1}: refusing it"
    assert _leftovers(dest) == []


def test_missing_source(tmp_path):
    dest = _dest(tmp_path)
    url = (tmp_path / "mirror" / "nothing.deb").as_uri()
    with pytest.raises(InfraError) as ei:
        fetch_verified(url, dest, sha256=SHA, size=None, label="pkg")
    assert ei.value.message.startswith(f"download failed: {url}: ")
    assert ei.value.hint == "check the network or KHARNESS_DEBIAN_MIRROR"
    assert _leftovers(dest) == []


def test_cached_file_is_reused_without_reading_the_source(tmp_path, source):
    dest = _dest(tmp_path)
    fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT), label="pkg")
    source.unlink()  # the mirror is gone: a verified cached copy needs no download
    assert fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT), label="pkg") == dest
    assert dest.read_bytes() == CONTENT


def test_altered_cached_file_is_fetched_again(tmp_path, source):
    dest = _dest(tmp_path)
    fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT), label="pkg")
    dest.write_bytes(CONTENT[:-1] + b"X")  # bit rot / tampering in the cache
    fetch_verified(source.as_uri(), dest, sha256=SHA, size=len(CONTENT), label="pkg")
    assert dest.read_bytes() == CONTENT
    assert _leftovers(dest) == [dest.name]


def test_altered_cached_file_and_bad_source_leaves_nothing(tmp_path, source):
    dest = _dest(tmp_path)
    dest.write_bytes(b"tampered")
    source.write_bytes(b"also wrong")
    with pytest.raises(InfraError):
        fetch_verified(source.as_uri(), dest, sha256=SHA, size=None, label="pkg")
    assert _leftovers(dest) == []


def test_fetch_bytes(tmp_path, source):
    assert fetch_bytes(source.as_uri()) == CONTENT
    with pytest.raises(InfraError) as ei:
        fetch_bytes((tmp_path / "missing").as_uri())
    assert ei.value.message.startswith("download failed: file://")


# --- over HTTP, on loopback ---------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves CONTENT in the way the path names. ``sent`` counts the body bytes each path wrote."""

    sent: dict[str, int] = {}

    def log_message(self, *a):
        pass

    def _body(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:          # the client hung up: what a bounded download does
            return False
        self.sent[self.path] = self.sent.get(self.path, 0) + len(data)
        return True

    def do_GET(self):
        path = self.path
        self.send_response(200)
        if path == "/exact":
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self._body(CONTENT)
        elif path == "/endless":
            # No Content-Length: the body ends when the server closes, here after 256 MB.
            self.end_headers()
            for _ in range(256):
                if not self._body(b"x" * (1 << 20)):
                    break
        elif path == "/announces-more":
            self.send_header("Content-Length", str(len(CONTENT) * 1000))
            self.end_headers()
            self._body(CONTENT)
        elif path == "/trickle":
            # A byte every 50 ms: the per-read timeout never fires. Bounded at 60 s so a broken
            # client cannot keep this thread forever.
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            end = time.monotonic() + 60
            for i in range(len(CONTENT)):
                if time.monotonic() > end or not self._body(CONTENT[i:i + 1]):
                    break
                time.sleep(0.05)
        elif path == "/truncated":
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self._body(CONTENT[: len(CONTENT) // 2])
        elif path == "/chunked-truncated":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._body(b"%x\r\n" % 100 + CONTENT[:100] + b"\r\n")   # then no more chunks, no end
        elif path == "/reset":
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self._body(CONTENT[:10])
            # SO_LINGER 0: close with a RST, as a dying proxy does
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True


@pytest.fixture
def server():
    _Handler.sent = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_download_with_progress(tmp_path, server, monkeypatch):
    seen = []

    class Bar:
        def __init__(self, label, total):
            seen.append(("total", total))

        def advance(self, n):
            seen.append(("advance", n))

        def close(self):
            seen.append(("close", None))

    monkeypatch.setattr(ui, "ByteProgress", Bar)
    dest = _dest(tmp_path)
    fetch_verified(f"{server}/exact", dest, sha256=SHA, size=len(CONTENT), label="pkg")
    assert dest.read_bytes() == CONTENT
    assert seen[0] == ("total", len(CONTENT)) and seen[-1] == ("close", None)
    assert sum(n for k, n in seen if k == "advance") == len(CONTENT)


def test_a_server_sending_more_than_promised_is_cut_off(tmp_path, server):
    dest = _dest(tmp_path)
    with pytest.raises(InfraError) as ei:
        fetch_verified(f"{server}/endless", dest, sha256=SHA, size=len(CONTENT), label="pkg 1.0")
    assert ei.value.message == (f"download of pkg 1.0: the server sent more than {len(CONTENT)} bytes, "
                                f"the index says {len(CONTENT)}: refusing it")
    assert _leftovers(dest) == []


def test_a_server_announcing_more_than_promised_is_refused_before_the_body(tmp_path, server):
    dest = _dest(tmp_path)
    with pytest.raises(InfraError) as ei:
        fetch_verified(f"{server}/announces-more", dest, sha256=SHA, size=len(CONTENT), label="pkg 1.0")
    assert ei.value.message == (f"download of pkg 1.0: the server announces {len(CONTENT) * 1000} bytes, "
                                f"the index says {len(CONTENT)}: refusing it")


def test_fetch_bytes_is_capped(server):
    with pytest.raises(InfraError) as ei:
        fetch_bytes(f"{server}/endless", limit=1 << 20)
    assert ei.value.message == (f"download of {server}/endless: the server sent more than 1048576 bytes, "
                                "the most kharness reads for it is 1048576: refusing it")
    assert fetch_bytes(f"{server}/exact", limit=len(CONTENT)) == CONTENT


def test_a_trickling_server_meets_the_overall_deadline(tmp_path, server):
    dest = _dest(tmp_path)
    with pytest.raises(InfraError) as ei:
        fetch_verified(f"{server}/trickle", dest, sha256=SHA, size=len(CONTENT), label="pkg 1.0", deadline=1)
    assert ei.value.message.startswith("download of pkg 1.0 did not finish within 1 s (")
    assert ei.value.message.endswith(" bytes so far): giving up")
    assert "KHARNESS_DOWNLOAD_DEADLINE" in ei.value.hint
    assert _leftovers(dest) == []


def test_the_deadline_can_be_set_from_the_environment(tmp_path, server, monkeypatch):
    monkeypatch.setenv("KHARNESS_DOWNLOAD_DEADLINE", "1")
    with pytest.raises(InfraError, match="did not finish within 1 s"):
        fetch_bytes(f"{server}/trickle")
    monkeypatch.setenv("KHARNESS_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(InfraError, match="is not a positive number of seconds"):
        fetch_bytes(f"{server}/exact")


def test_the_deadline_scales_with_the_size(monkeypatch):
    monkeypatch.delenv("KHARNESS_DOWNLOAD_DEADLINE", raising=False)
    small, large = download.deadline_for(1000), download.deadline_for(200_000_000)
    assert small >= 60 and large > small and large >= 200 * 5   # >= 5 s per MB on a large file
    assert download.deadline_for(None) < float("inf")


@pytest.mark.parametrize("path,want", [
    ("/truncated", "download of pkg 1.0 was cut short: 5124 of the 10248 bytes the server announced"),
    ("/chunked-truncated", "download failed: {server}/chunked-truncated: IncompleteRead"),
    ("/reset", "download failed: {server}/reset: "),
])
def test_a_truncated_or_reset_response_is_one_line(tmp_path, server, path, want):
    dest = _dest(tmp_path)
    with pytest.raises(InfraError) as ei:
        fetch_verified(f"{server}{path}", dest, sha256=SHA, size=len(CONTENT), label="pkg 1.0")
    assert ei.value.message.startswith(want.format(server=server)), ei.value.message
    assert "\n" not in str(ei.value)
    assert _leftovers(dest) == []
    with pytest.raises(InfraError):
        fetch_bytes(f"{server}{path}")
