"""Unit tests for kharness.image.cpio (newc writer and reader) and initramfs.payload_cpio."""

from __future__ import annotations

import stat

import pytest

from kharness.image.cpio import CpioWriter, read_newc
from kharness.image.initramfs import PAYLOAD_DIR, payload_cpio


def _headers(archive: bytes) -> list[dict]:
    """Every header of a newc archive (trailer included), with its offset, decoded by hand."""
    names = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
             "rdevmajor", "rdevminor", "namesize", "check")
    out = []
    off = 0
    while off < len(archive) and archive[off:off + 6] == b"070701":
        h = {n: int(archive[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i, n in enumerate(names)}
        h["offset"] = off
        h["name"] = archive[off + 110: off + 110 + h["namesize"] - 1].decode()
        assert archive[off + 110 + h["namesize"] - 1] == 0
        doff = off + 110 + h["namesize"]
        doff += (4 - doff % 4) % 4
        h["data_offset"] = doff
        out.append(h)
        off = doff + h["filesize"]
        off += (4 - off % 4) % 4
    return out


def _sample() -> CpioWriter:
    w = CpioWriter()
    w.dir("bin")
    w.dir("/dev", 0o700)
    w.file("bin/a", b"x")                 # 1 byte
    w.file("bin/bb", b"abcde", 0o755)      # 5 bytes
    w.file("empty", b"")
    w.file("bin/blob", bytes(range(256)) * 3 + b"odd")
    w.symlink("bin/sh", "busybox")
    w.chardev("dev/console", 5, 1)
    return w


def test_round_trip():
    data = _sample().getvalue()
    assert read_newc(data) == [
        ("bin", stat.S_IFDIR | 0o755, b""),
        ("dev", stat.S_IFDIR | 0o700, b""),
        ("bin/a", stat.S_IFREG | 0o644, b"x"),
        ("bin/bb", stat.S_IFREG | 0o755, b"abcde"),
        ("empty", stat.S_IFREG | 0o644, b""),
        ("bin/blob", stat.S_IFREG | 0o644, bytes(range(256)) * 3 + b"odd"),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox"),
        ("dev/console", stat.S_IFCHR | 0o600, b""),
    ]


def test_padding_and_trailer():
    data = _sample().getvalue()
    assert len(data) % 512 == 0
    hs = _headers(data)
    assert [h["name"] for h in hs][-1] == "TRAILER!!!"
    trailer = hs[-1]
    assert (trailer["mode"], trailer["filesize"], trailer["namesize"]) == (0, 0, len("TRAILER!!!") + 1)
    end = trailer["data_offset"]
    assert set(data[end:]) <= {0}
    for h in hs:
        assert h["offset"] % 4 == 0
        assert h["data_offset"] % 4 == 0
        # every header is ASCII hex
        assert data[h["offset"]:h["offset"] + 110].decode("ascii")


def test_header_fields():
    hs = {h["name"]: h for h in _headers(_sample().getvalue())}
    con = hs["dev/console"]
    assert (con["rdevmajor"], con["rdevminor"]) == (5, 1)
    assert (con["devmajor"], con["devminor"]) == (0, 0)
    assert con["filesize"] == 0
    assert stat.S_ISCHR(con["mode"])
    blob = hs["bin/blob"]
    assert blob["filesize"] == 256 * 3 + 3
    assert (blob["uid"], blob["gid"], blob["mtime"], blob["nlink"], blob["check"]) == (0, 0, 0, 1, 0)
    assert (hs["bin/a"]["rdevmajor"], hs["bin/a"]["rdevminor"]) == (0, 0)
    inos = [h["ino"] for h in hs.values()]
    assert inos == list(range(1, len(inos) + 1))


def test_exact_bytes_of_one_entry():
    w = CpioWriter()
    w.file("f", b"abc")
    data = w.getvalue()
    header = (b"070701" + b"00000001" + b"000081A4" + b"00000000" * 2 + b"00000001" + b"00000000"
              + b"00000003" + b"00000000" * 4 + b"00000002" + b"00000000")
    # 110 + 2 bytes of name: already 4-aligned; 3 bytes of data padded to 4
    assert data.startswith(header + b"f\0" + b"abc\0" + b"070701")
    assert len(data) == 512


def test_reproducible_and_getvalue_repeatable():
    w = _sample()
    first = w.getvalue()
    assert w.getvalue() == first
    assert _sample().getvalue() == first
    w.file("later", b"1")  # getvalue did not close the writer
    assert read_newc(w.getvalue())[-1] == ("later", stat.S_IFREG | 0o644, b"1")


def test_duplicate_names():
    w = CpioWriter()
    w.file("a", b"1")
    with pytest.raises(ValueError) as ei:
        w.file("a", b"2")
    assert str(ei.value) == "duplicate cpio entry 'a'"
    with pytest.raises(ValueError):
        w.dir("/a")  # the leading slash is stripped: same entry
    with pytest.raises(ValueError):
        w.symlink("a", "b")


def test_independent_writers():
    a = CpioWriter()
    a.file("x", b"1")
    b = CpioWriter()
    b.file("x", b"2")  # no state shared between instances
    assert read_newc(b.getvalue()) == [("x", stat.S_IFREG | 0o644, b"2")]


def test_read_newc_concatenated_archives():
    first = _sample().getvalue()
    second = payload_cpio({"m.ko": b"mod"})
    # read_newc stops at the first trailer
    assert [n for n, _, _ in read_newc(first + second)] == [n for n, _, _ in read_newc(first)]
    assert read_newc(second) == [("kh/m.ko", stat.S_IFREG | 0o644, b"mod")]


def test_read_newc_bad_magic():
    with pytest.raises(ValueError) as ei:
        read_newc(b"\0" * 4 + b"070707garbage")
    assert str(ei.value) == "bad cpio magic at offset 4"


def test_empty_writer_is_just_a_trailer():
    data = CpioWriter().getvalue()
    assert len(data) == 512
    assert read_newc(data) == []
    assert [h["name"] for h in _headers(data)] == ["TRAILER!!!"]


def test_payload_cpio_under_kh():
    data = payload_cpio({"zeta.ko": b"z" * 7, "alpha.ko": b"a", "kharness.json": b"{}"})
    assert PAYLOAD_DIR == "kh"
    assert read_newc(data) == [
        ("kh/alpha.ko", stat.S_IFREG | 0o644, b"a"),
        ("kh/kharness.json", stat.S_IFREG | 0o644, b"{}"),
        ("kh/zeta.ko", stat.S_IFREG | 0o644, b"z" * 7),
    ]
    assert len(data) % 512 == 0


def test_payload_cpio_empty():
    assert read_newc(payload_cpio({})) == []
