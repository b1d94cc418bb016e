"""Unit tests for the pure helpers of kharness.kernels.store (no download, no real kernel)."""

from __future__ import annotations

import gzip
import lzma
import os

import pytest
import zstandard

from kharness.errors import InfraError
from kharness.kernels import store
from kharness.kernels.store import _decompress_module, _module_name, _redirect_usr_src, extract_vmlinux

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64 + b"end-of-vmlinux"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))


def _xz(data: bytes) -> bytes:
    # x86 kernels use CRC32 xz streams
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)


def test_vmlinux_from_xz_bzimage():
    bz = b"junk" * 100 + _xz(ELF) + b"tail"
    assert extract_vmlinux(bz) == ELF


def test_vmlinux_from_gzip_bzimage():
    bz = b"MZ\x00setup" * 50 + gzip.compress(ELF, mtime=0) + b"tail"
    assert extract_vmlinux(bz) == ELF


def test_vmlinux_from_zstd_bzimage():
    bz = b"junk" + zstandard.ZstdCompressor().compress(ELF) + b"tail"
    assert extract_vmlinux(bz) == ELF


def test_vmlinux_skips_false_magic_and_non_elf_streams():
    # a stray xz magic, then a valid stream that is not an ELF, then the real one
    bz = b"\xfd7zXZ\x00garbage" + _xz(b"not an elf at all") + b"pad" + _xz(ELF) + b"tail"
    assert extract_vmlinux(bz) == ELF


def test_vmlinux_no_stream():
    with pytest.raises(InfraError) as ei:
        extract_vmlinux(b"junk" * 1000 + b"\x1f\x8b\x08broken" + b"\xfd7zXZ\x00broken")
    assert ei.value.message == "no compressed ELF vmlinux found in the bzImage"


def test_vmlinux_compressed_non_elf_only():
    with pytest.raises(InfraError):
        extract_vmlinux(b"junk" + gzip.compress(b"plain data", mtime=0))


MOD = b"\x7fELF module body " * 100


@pytest.mark.parametrize("suffix,compress", [
    (".ko.xz", lambda d: lzma.compress(d, check=lzma.CHECK_CRC32)),
    (".ko.zst", lambda d: zstandard.ZstdCompressor().compress(d)),
    (".ko.gz", lambda d: gzip.compress(d, mtime=0)),
])
def test_decompress_module(tmp_path, suffix, compress):
    src = tmp_path / f"virtio_console{suffix}"
    src.write_bytes(compress(MOD))
    out = _decompress_module(src)
    assert out == tmp_path / "virtio_console.ko"
    assert out.read_bytes() == MOD
    assert not src.exists()


def test_decompress_module_zstd_without_content_size(tmp_path):
    # kmod's zstd modules are written in streaming mode: no content size in the frame header
    cctx = zstandard.ZstdCompressor()
    chunks = cctx.compressobj()
    data = chunks.compress(MOD) + chunks.flush()
    src = tmp_path / "m.ko.zst"
    src.write_bytes(data)
    assert _decompress_module(src).read_bytes() == MOD


def test_decompress_module_plain_ko_untouched(tmp_path):
    src = tmp_path / "plain.ko"
    src.write_bytes(MOD)
    assert _decompress_module(src) == src
    assert src.read_bytes() == MOD


@pytest.mark.parametrize("path,name", [
    ("lib/modules/6.1.0-50-amd64/kernel/drivers/char/virtio_console.ko.xz", "virtio_console"),
    ("usr/lib/modules/7.2/kernel/drivers/net/virtio-net.ko.zst", "virtio_net"),
    ("x/9pnet_virtio.ko", "9pnet_virtio"),
])
def test_module_name(path, name):
    assert _module_name(path) == name


def test_redirect_usr_src(tmp_path):
    tmp = tmp_path / "stage"
    final = tmp_path / "headers" / "6.1.0-50-amd64-abc"
    top = tmp / "usr/src/linux-headers-6.1.0-50-amd64"
    top.mkdir(parents=True)
    (top / "Makefile").write_text(
        "include /usr/src/linux-headers-6.1.0-50-common/Makefile\n"
        "KBUILD_OUTPUT=/usr/src/linux-headers-6.1.0-50-amd64\n"
        "KEEP := /opt/usr/src/x dir/usr/src/y\n")
    (top / "arch.mk").write_text("X = /usr/src/a\n")
    (top / "other.txt").write_text("/usr/src/unchanged\n")
    (top / "common.mk").write_text("nothing to redirect\n")
    os.symlink("Makefile", top / "link.mk")
    _redirect_usr_src(tmp, final, "6.1.0-50-amd64")
    assert (top / "Makefile").read_text() == (
        f"include {final}/usr/src/linux-headers-6.1.0-50-common/Makefile\n"
        f"KBUILD_OUTPUT={final}/usr/src/linux-headers-6.1.0-50-amd64\n"
        "KEEP := /opt/usr/src/x dir/usr/src/y\n")
    assert (top / "arch.mk").read_text() == f"X = {final}/usr/src/a\n"
    assert (top / "other.txt").read_text() == "/usr/src/unchanged\n"
    assert os.readlink(top / "link.mk") == "Makefile"


def test_redirect_usr_src_missing_tree(tmp_path):
    with pytest.raises(InfraError) as ei:
        _redirect_usr_src(tmp_path, tmp_path / "final", "6.1.0-50-amd64")
    assert ei.value.message == "headers package for 6.1.0-50-amd64 has no usr/src/linux-headers-6.1.0-50-amd64"


def test_key_is_stable_and_order_sensitive():
    assert store._key("a", "b") == store._key("a", "b")
    assert store._key("a", "b") != store._key("b", "a")
    assert len(store._key("x")) == 12


def test_config_fragment_check_accepts_n_and_catches_lost_options(tmp_path):
    from kharness.errors import InfraError
    from kharness.kernels.source import _check_fragment

    cfg = tmp_path / ".config"
    cfg.write_text("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_PANIC_TIMEOUT=-1\nCONFIG_AB=y\n")
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_A=y\nCONFIG_B=n\nCONFIG_PANIC_TIMEOUT=-1\n# comment\n")
    _check_fragment(cfg, [frag])
    frag.write_text("CONFIG_A=y\nCONFIG_SHMEM=y\nCONFIG_AB=n\n")
    with pytest.raises(InfraError, match="lost CONFIG_SHMEM=y, CONFIG_AB=n"):
        _check_fragment(cfg, [frag])


def test_decompress_module_replaces_a_link_instead_of_writing_through_it(tmp_path):
    # A package's 'virtio_console.ko' link next to its '.ko.xz': writing the decompressed module
    # must replace the link, not follow it to whatever it names.
    root = tmp_path / "root"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    os.symlink(victim, root / "virtio_console.ko")
    src = root / "virtio_console.ko.xz"
    src.write_bytes(lzma.compress(MOD, check=lzma.CHECK_CRC32))
    out = _decompress_module(src)
    assert not out.is_symlink() and out.read_bytes() == MOD
    assert victim.read_bytes() == b"untouched"
    assert sorted(p.name for p in root.iterdir()) == ["virtio_console.ko"]
