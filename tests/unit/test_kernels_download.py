"""Unit tests for kharness.kernels.download with ``file://`` URLs (urllib reads them: no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from kharness.errors import InfraError
from kharness.kernels.download import fetch_bytes, fetch_verified, sha256_file

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
