"""Unit tests for kharness.debian.deb.extract_deb: unpacking hostile and ordinary packages.

The .deb files are built here, in memory: an ``ar`` archive holding debian-binary,
control.tar.xz and data.tar.xz.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest

from kharness.debian.deb import UnsafeArchive, extract_deb
from kharness.errors import InfraError


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = (name.encode().ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6)
                  + b"100644".ljust(8) + str(len(data)).encode().ljust(10) + b"`\n")
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def _tar_xz(entries: list[tuple]) -> bytes:
    """entries: ("dir", name) | ("file", name, data[, mode]) | ("sym", name, target)
    | ("hard", name, target) | ("chr", name, major, minor) | ("fifo", name)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e[1])
            ti.mtime = 0
            data = None
            if e[0] == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif e[0] == "file":
                data = e[2]
                ti.size = len(data)
                ti.mode = e[3] if len(e) > 3 else 0o644
            elif e[0] == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e[2], 0o777
            elif e[0] == "hard":
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, e[2], 0o644
            elif e[0] == "chr":
                ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, e[2], e[3], 0o600
            elif e[0] == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o644
            else:
                raise AssertionError(e)
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    return lzma.compress(buf.getvalue(), format=lzma.FORMAT_XZ)


def make_deb(path: Path, entries: list[tuple]) -> Path:
    control = _tar_xz([("dir", "./"), ("file", "./control", b"Package: test\nVersion: 1\nArchitecture: all\n")])
    path.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", control),
                          ("data.tar.xz", _tar_xz(entries))]))
    return path


@pytest.fixture
def box(tmp_path):
    """(deb path, dest, outside): dest lives in a box so that escapes land in a visible place."""
    box = tmp_path / "box"
    dest = box / "dest"
    box.mkdir()
    return tmp_path / "test.deb", dest, box


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_normal_package(box):
    deb, dest, _ = box
    make_deb(deb, [
        ("dir", "./"),
        ("dir", "./usr/"),
        ("dir", "./usr/bin/"),
        ("file", "./usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o4755),
        ("dir", "./usr/share/doc/test/"),
        ("file", "./usr/share/doc/test/README", b"odd length"),
        ("sym", "./usr/bin/tool-link", "tool"),
        ("sym", "./usr/share/doc/test/up", "../../../bin/tool"),
        ("hard", "./usr/bin/tool-hard", "./usr/bin/tool"),
    ])
    written = extract_deb(deb, dest)
    # directories are created but not reported
    assert written == ["usr/bin/tool", "usr/share/doc/test/README", "usr/bin/tool-link",
                       "usr/share/doc/test/up", "usr/bin/tool-hard"]
    assert (dest / "usr/bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (dest / "usr/bin/tool").stat().st_mode & 0o7777 == 0o755  # setuid dropped
    assert (dest / "usr/share/doc/test/README").read_bytes() == b"odd length"
    assert (dest / "usr/share/doc/test/README").stat().st_mode & 0o777 == 0o644
    assert os.readlink(dest / "usr/bin/tool-link") == "tool"
    assert os.readlink(dest / "usr/share/doc/test/up") == "../../../bin/tool"
    assert (dest / "usr/share/doc/test/up").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(dest / "usr/bin/tool-hard").st_ino == os.stat(dest / "usr/bin/tool").st_ino


def test_absolute_symlink_is_rerooted(box):
    deb, dest, _ = box
    make_deb(deb, [
        ("dir", "./lib/modules/6.1.0-50-amd64/"),
        ("sym", "./lib/modules/6.1.0-50-amd64/build", "/usr/src/linux-headers-6.1.0-50-amd64"),
        ("dir", "./usr/src/linux-headers-6.1.0-50-amd64/"),
        ("file", "./usr/src/linux-headers-6.1.0-50-amd64/Makefile", b"include x\n"),
        ("sym", "./rootlink", "/"),
    ])
    extract_deb(deb, dest)
    link = dest / "lib/modules/6.1.0-50-amd64/build"
    assert os.readlink(link) == "../../../usr/src/linux-headers-6.1.0-50-amd64"
    assert (link / "Makefile").read_bytes() == b"include x\n"
    assert os.path.realpath(dest / "rootlink") == os.path.realpath(dest)


def test_replaces_existing_entries(box):
    deb, dest, _ = box
    (dest / "a").mkdir(parents=True)
    (dest / "a" / "old").write_text("old")
    (dest / "b").write_text("old file")
    make_deb(deb, [("file", "./a", b"now a file"), ("sym", "./b", "a")])
    extract_deb(deb, dest)
    assert (dest / "a").read_bytes() == b"now a file"
    assert os.readlink(dest / "b") == "a"


@pytest.mark.parametrize("name", ["../evil", "./a/../../evil", "/etc/evil", "a/b/../../../evil", ".."])
def test_member_leaving_dest_is_refused(box, name):
    deb, dest, outside = box
    make_deb(deb, [("file", "./fine", b"x"), ("file", name, b"evil")])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert ei.value.message.startswith("test.deb: ")
    assert "refusing to unpack it" in ei.value.message
    assert isinstance(ei.value, InfraError)
    assert _tree(outside) == {"dest", "dest/fine"}
    assert not (outside.parent / "evil").exists()


def test_dotdot_inside_stays_inside_is_fine(box):
    deb, dest, _ = box
    make_deb(deb, [("file", "./a/../b", b"ok")])
    assert extract_deb(deb, dest) == ["b"]
    assert (dest / "b").read_bytes() == b"ok"


@pytest.mark.parametrize("target", ["../../outside", "../box", "a/../../..", ".."])
def test_symlink_pointing_out_is_refused(box, target):
    deb, dest, outside = box
    make_deb(deb, [("sym", "./link", target)])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert ei.value.message == f"test.deb: symlink 'link' -> {target!r} points out of the unpack directory"
    assert not (dest / "link").is_symlink()


def test_nested_symlink_pointing_out_is_refused(box):
    deb, dest, _ = box
    make_deb(deb, [("sym", "./usr/lib/x/link", "../../../../etc/passwd")])
    with pytest.raises(UnsafeArchive):
        extract_deb(deb, dest)
    assert not (dest / "usr/lib/x/link").is_symlink()


def test_write_through_symlinked_dir_pointing_out_is_refused(box):
    deb, dest, outside = box
    evil_dir = outside / "elsewhere"
    evil_dir.mkdir()
    dest.mkdir()
    # A link to outside left from an earlier unpack (a package cannot make one itself).
    os.symlink(evil_dir, dest / "sub")
    make_deb(deb, [("file", "./sub/payload", b"evil")])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert ei.value.message == "test.deb: 'sub/payload' would be written through a link out of the unpack directory"
    assert list(evil_dir.iterdir()) == []


def test_write_through_escaping_link_made_by_the_same_archive_is_refused(box):
    deb, dest, outside = box
    # './c/x -> ..' is refused as the link is made; nothing is ever written through it.
    make_deb(deb, [("sym", "./c", "."), ("sym", "./c/x", ".."), ("file", "./x/evil", b"evil")])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert "points out of the unpack directory" in ei.value.message
    assert not (outside / "evil").exists()


def test_write_through_rerooted_absolute_link_stays_inside(box):
    deb, dest, outside = box
    make_deb(deb, [
        ("sym", "./etc", "/srv/etc"),   # re-rooted: dest/srv/etc
        ("dir", "./srv/etc/"),
        ("file", "./etc/passwd", b"root::0:0\n"),
    ])
    extract_deb(deb, dest)
    assert (dest / "srv/etc/passwd").read_bytes() == b"root::0:0\n"
    assert _tree(outside) == {"dest", "dest/etc", "dest/srv", "dest/srv/etc", "dest/srv/etc/passwd"}


def test_hard_link_to_outside_is_refused(box):
    deb, dest, _ = box
    make_deb(deb, [("hard", "./h", "../../etc/passwd")])
    with pytest.raises(UnsafeArchive):
        extract_deb(deb, dest)
    assert not (dest / "h").exists()


def test_select_limits_what_is_written(box):
    deb, dest, _ = box
    make_deb(deb, [
        ("dir", "./boot/"),
        ("file", "./boot/vmlinuz-6.1.0-50-amd64", b"kernel"),
        ("file", "./boot/config-6.1.0-50-amd64", b"CONFIG_X=y\n"),
        ("dir", "./usr/share/doc/linux/"),
        ("file", "./usr/share/doc/linux/changelog.gz", b"gz"),
    ])
    seen: list[str] = []

    def select(rel: str) -> bool:
        seen.append(rel)
        return rel.startswith("boot/vmlinuz")

    written = extract_deb(deb, dest, select)
    assert written == ["boot/vmlinuz-6.1.0-50-amd64"]
    assert seen == ["boot", "boot/vmlinuz-6.1.0-50-amd64", "boot/config-6.1.0-50-amd64",
                    "usr/share/doc/linux", "usr/share/doc/linux/changelog.gz"]
    assert _tree(dest) == {"boot", "boot/vmlinuz-6.1.0-50-amd64"}


def test_device_nodes_and_fifos_are_skipped(box):
    deb, dest, _ = box
    make_deb(deb, [
        ("dir", "./dev/"),
        ("chr", "./dev/console", 5, 1),
        ("fifo", "./dev/fifo"),
        ("file", "./dev/README", b"r"),
    ])
    assert extract_deb(deb, dest) == ["dev/README"]
    assert _tree(dest) == {"dev", "dev/README"}


def test_not_a_deb(box):
    deb, dest, _ = box
    deb.write_bytes(b"this is not an ar archive")
    try:
        extract_deb(deb, dest)
    except InfraError as e:
        err = e
    except Exception as e:  # noqa: BLE001 - the bug: anything else escapes
        raise AssertionError(f"{type(e).__module__}.{type(e).__name__} escaped: {e}") from e
    else:
        raise AssertionError("no error for a file that is not a .deb")
    assert err.message.startswith("test.deb is not a readable Debian package: ")
    assert not isinstance(err, UnsafeArchive)


def test_deb_without_data_member(box):
    deb, dest, _ = box
    deb.write_bytes(_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", _tar_xz([]))]))
    with pytest.raises(InfraError) as ei:
        extract_deb(deb, dest)
    assert ei.value.message.startswith("test.deb is not a readable Debian package: ")


def _escaping(dest: Path) -> list[str]:
    """Symlinks under ``dest`` that resolve outside it (judged by the OS, not by their text)."""
    root = os.path.realpath(dest)
    out = []
    for p in [dest, *dest.rglob("*")]:
        if p.is_symlink():
            real = os.path.realpath(p)
            if not (real == root or real.startswith(root + os.sep)):
                out.append(f"{p.relative_to(dest)} -> {os.readlink(p)} resolves to {real}")
    return out


def test_symlink_escape_through_earlier_symlink_is_refused(box):
    deb, dest, outside = box
    make_deb(deb, [("sym", "./c", "."), ("sym", "./c/x", "..")])
    with pytest.raises(UnsafeArchive):
        extract_deb(deb, dest)
    assert _escaping(dest) == []


def test_chained_symlink_escape_is_refused(box):
    deb, dest, outside = box
    # 's' points at the root (inside); 't -> s/..' reads as 'a/b' but resolves to the root's
    # parent. Then a write under 't' (or a later write by store.py) would land outside.
    make_deb(deb, [("dir", "./a/b/"), ("sym", "./a/b/s", "../.."), ("sym", "./a/b/t", "s/.."),
                   ("file", "./a/b/t/evil", b"evil")])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert ei.value.message == ("test.deb: symlink 'a/b/t' -> 's/..' points out of the unpack directory "
                                "through another link")
    assert _escaping(dest) == []
    assert not (outside / "evil").exists() and not (outside.parent / "evil").exists()


def test_a_link_retargeted_by_a_later_member_is_refused(box):
    deb, dest, outside = box
    # 'l -> d/..' is the root while 'd' is a directory; turning 'd' into a link to the root
    # (itself inside) makes 'l' resolve outside. Only a check after the unpack sees it.
    make_deb(deb, [("dir", "./d/"), ("sym", "./l", "d/.."), ("sym", "./d", ".")])
    with pytest.raises(UnsafeArchive) as ei:
        extract_deb(deb, dest)
    assert ei.value.message == ("test.deb: symlink 'l' resolves out of the unpack directory through another "
                                "link: refusing to unpack it")
    assert _escaping(dest) == []


def test_files_are_written_as_new_files_not_through_a_link(box):
    deb, dest, outside = box
    victim = outside / "victim"
    victim.write_bytes(b"untouched")
    dest.mkdir()
    os.symlink("../victim", dest / "f")     # left by an earlier unpack into the same root
    make_deb(deb, [("file", "./f", b"new")])
    extract_deb(deb, dest)
    assert not (dest / "f").is_symlink() and (dest / "f").read_bytes() == b"new"
    assert victim.read_bytes() == b"untouched"
