"""Seals on cache entries: a sound entry passes, every kind of damage is named, old or missing
seals mean "make it again", and `kharness cache verify` finds what a stat cannot."""

from __future__ import annotations

import hashlib
import os

import pytest

from kharness import cachectl, seal
from kharness.lock import staging_dir


def _entry(tmp_path):
    e = tmp_path / "kernels" / "6.1.0-50-amd64-abc"
    with staging_dir(e) as tmp:
        (tmp / "vmlinux").write_bytes(b"\x7fELF" + b"k" * 4000)
        (tmp / "lib").mkdir()
        (tmp / "lib" / "virtio.ko").write_bytes(b"m" * 100)
        (tmp / "link").symlink_to("vmlinux")
        seal.seal(tmp, {"release": "6.1.0-50-amd64"})
    return e


def test_a_sound_entry_passes_and_keeps_its_meta(tmp_path):
    e = _entry(tmp_path)
    assert seal.problem(e) is None and seal.problem(e, deep=True) is None
    assert seal.read_meta(e) == {"release": "6.1.0-50-amd64"}
    assert seal.usable(e, "kernel")


@pytest.mark.parametrize("damage,needle", [
    (lambda e: (e / "vmlinux").write_bytes(b"short"), "vmlinux has 5 bytes, 4004 when it was sealed"),
    (lambda e: os.truncate(e / "lib" / "virtio.ko", 10), "lib/virtio.ko has 10 bytes"),
    (lambda e: (e / "lib" / "virtio.ko").unlink(), "lib/virtio.ko is missing"),
    (lambda e: os.utime(e / "vmlinux", ns=(0, 0)), "vmlinux was modified after it was sealed"),
    (lambda e: ((e / "link").unlink(), (e / "link").symlink_to("lib")), "link points elsewhere"),
    (lambda e: (e / seal.MARKER).unlink(), "incomplete (no seal"),
    (lambda e: (e / seal.MARKER).write_text(""), "older kharness or with a damaged seal"),
    (lambda e: (e / seal.MARKER).write_text('{"release": "6.1"}'), "older kharness"),
])
def test_damage_is_named(tmp_path, damage, needle):
    e = _entry(tmp_path)
    damage(e)
    assert needle in seal.problem(e)
    assert not seal.usable(e, "kernel")


def test_same_size_same_time_tampering_needs_the_deep_check(tmp_path, monkeypatch):
    e = _entry(tmp_path)
    st = (e / "vmlinux").stat()
    with (e / "vmlinux").open("r+b") as f:
        f.seek(100)
        f.write(b"X")
    os.utime(e / "vmlinux", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert seal.problem(e) is None
    assert seal.problem(e, deep=True) == "vmlinux does not match its SHA256"
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path))
    deb = tmp_path / "debs" / (hashlib.sha256(b"good").hexdigest() + ".deb")
    deb.parent.mkdir()
    deb.write_bytes(b"evil")
    bad = cachectl.verify()
    assert bad == [("debs", deb.name, "does not match the SHA256 it is named by"),
                   ("kernels", e.name, "vmlinux does not match its SHA256")]
    assert cachectl.verify(["kernels"], fix=True) == [("kernels", e.name, "vmlinux does not match its SHA256")]
    assert "no seal" in seal.problem(e)          # discarded: the next use makes it again
    assert cachectl.verify(["kernels"]) == []


def test_sealing_a_subset(tmp_path):
    e = tmp_path / "kernel-builds" / "ppc64-x"
    (e / "out").mkdir(parents=True)
    (e / "out" / "vmlinux").write_bytes(b"v")
    (e / "out" / "other.o").write_bytes(b"o")
    seal.seal(e, only=["out/vmlinux"])
    (e / "out" / "other.o").write_bytes(b"changed")
    assert seal.problem(e) is None
    (e / "out" / "vmlinux").write_bytes(b"changed")
    assert "out/vmlinux has 7 bytes" in seal.problem(e)


def test_a_run_reaps_what_a_killed_producer_left(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path))
    left = tmp_path / "headers" / ".6.12.95+deb12-amd64-abc.k2j4_x.tmp"
    left.mkdir(parents=True)
    (left / "half-unpacked").write_bytes(b"x")
    assert cachectl.reap_abandoned_staging() == 1
    assert not left.exists()


def test_an_older_kharness_entry_is_adopted_only_where_asked(tmp_path):
    e = tmp_path / "kernel-builds" / "ppc64-x"
    (e / "out").mkdir(parents=True)
    (e / "out" / "vmlinux").write_bytes(b"v")
    (e / seal.MARKER).touch()                      # how kharness marked entries before seals
    assert seal.problem(e) == seal.LEGACY
    assert not seal.usable(e, "kernel build")      # cheap entries are made again
    assert seal.usable(e, "kernel build", adopt=lambda: seal.seal(e, only=["out/vmlinux"]))
    assert seal.problem(e) is None
