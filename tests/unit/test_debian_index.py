"""Unit tests for kharness.debian.index: filtering a Packages file, version ordering, the cache,
and what a failed refresh does (falls back to the verified copy, or refuses; remembers only a
signature verdict, keyed by the mirror and keyring that gave it).

load_index is exercised against a ``file://`` mirror in a temporary directory: no network.
"""

from __future__ import annotations

import json
import lzma
import os
import time

import pytest

from kharness import ui
from kharness.debian import index as index_mod
from kharness.debian.index import PackageIndex, Pkg, filter_index_text, load_index
from kharness.debian.release import IndexRefused, SignatureRefused, verify_inrelease
from kharness.errors import InfraError

SHA_A = "a" * 64
SHA_B = "b" * 64


def _para(name: str, version: str, *, arch: str = "amd64", size: int = 1234, sha: str = SHA_A,
          depends: str | None = None, extra: str = "") -> str:
    lines = [f"Package: {name}", "Source: linux", f"Version: {version}", "Installed-Size: 99",
             "Maintainer: Someone <someone@example.invalid>", f"Architecture: {arch}"]
    if depends is not None:
        lines.append(f"Depends: {depends}")
    lines += ["Description: test package", f"Filename: pool/main/l/linux/{name}_{version}_{arch}.deb",
              f"Size: {size}", "MD5sum: 0123456789abcdef0123456789abcdef", f"SHA256: {sha}"]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


PACKAGES = "\n".join([
    _para("libc6", "2.36-9"),
    _para("linux-image-6.1.0-50-amd64", "6.1.170-1", size=104857600,
          depends="kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"),
    _para("linux-headers-6.1.0-50-amd64", "6.1.170-1", size=1500000,
          depends="linux-headers-6.1.0-50-common (= 6.1.170-1), linux-kbuild-6.1 (>= 6.1.170-1)"),
    _para("linux-kbuild-6.1", "6.1.170-1", size=1300000, sha=SHA_B),
    _para("busybox", "1:1.35.0-4"),
    _para("busybox-static", "1:1.35.0-4+b3", size=900000),
    _para("busybox-static-dbg", "1:1.35.0-4"),
    _para("linux-libc-dev", "6.1.170-1"),
    _para("linux-binary-7.2.13+deb14-amd64", "7.2.13-1"),
    _para("linux-modules-7.2.13+deb14-amd64", "7.2.13-1"),
    _para("linux-source-6.1", "6.1.170-1", arch="all"),
    # a kept prefix but no SHA256: unusable, dropped
    "Package: linux-image-broken\nVersion: 1\nArchitecture: amd64\nFilename: pool/x.deb\nSize: 1\n",
    _para("zlib1g", "1:1.2.13.dfsg-1"),
])


def test_filter_keeps_kernel_kbuild_busybox_static():
    pkgs = filter_index_text(PACKAGES, "bookworm")
    assert [p.name for p in pkgs] == [
        "linux-image-6.1.0-50-amd64",
        "linux-headers-6.1.0-50-amd64",
        "linux-kbuild-6.1",
        "busybox-static",
        "linux-binary-7.2.13+deb14-amd64",
        "linux-modules-7.2.13+deb14-amd64",
        "linux-source-6.1",
    ]


def test_filter_fields():
    pkgs = {p.name: p for p in filter_index_text(PACKAGES, "bookworm")}
    img = pkgs["linux-image-6.1.0-50-amd64"]
    assert img == Pkg(
        name="linux-image-6.1.0-50-amd64", version="6.1.170-1", arch="amd64",
        filename="pool/main/l/linux/linux-image-6.1.0-50-amd64_6.1.170-1_amd64.deb",
        size=104857600, sha256=SHA_A,
        depends="kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool",
        suite="bookworm",
    )
    assert isinstance(img.size, int)
    assert pkgs["linux-kbuild-6.1"].size == 1300000
    assert pkgs["linux-kbuild-6.1"].sha256 == SHA_B
    assert pkgs["linux-kbuild-6.1"].depends == ""
    assert pkgs["busybox-static"].version == "1:1.35.0-4+b3"
    assert pkgs["linux-source-6.1"].arch == "all"


def test_filter_empty_and_no_match():
    assert filter_index_text("", "sid") == []
    assert filter_index_text(_para("bash", "5.2-1"), "sid") == []


def test_pkg_url_and_to_dict():
    p = filter_index_text(PACKAGES, "trixie")[2]
    assert p.url("http://mirror.example/debian") == \
        "http://mirror.example/debian/pool/main/l/linux/linux-kbuild-6.1_6.1.170-1_amd64.deb"
    assert p.to_dict() == {"name": "linux-kbuild-6.1", "version": "6.1.170-1", "arch": "amd64",
                           "suite": "trixie", "sha256": SHA_B, "size": 1300000,
                           "filename": "pool/main/l/linux/linux-kbuild-6.1_6.1.170-1_amd64.deb"}


def _pkg(name: str, version: str) -> Pkg:
    return Pkg(name, version, "amd64", f"pool/{name}_{version}.deb", 1, SHA_A, "", "bookworm")


@pytest.mark.parametrize("versions,newest", [
    (["6.1.99-1", "6.1.176-1"], "6.1.176-1"),
    (["6.1.176-1", "6.1.99-1"], "6.1.176-1"),
    (["6.1.170-1~bpo11+1", "6.1.170-1"], "6.1.170-1"),
    (["6.1.170-1", "6.1.170-1+deb12u1"], "6.1.170-1+deb12u1"),
    (["2.0", "1:1.0"], "1:1.0"),
    (["1.35.0-4", "1.35.0-4+b3", "1.35.0-10"], "1.35.0-10"),
])
def test_get_returns_newest_debian_version(versions, newest):
    idx = PackageIndex("bookworm", "amd64", [_pkg("linux-kbuild-6.1", v) for v in versions])
    assert idx.get("linux-kbuild-6.1").version == newest
    assert idx.by_name["linux-kbuild-6.1"][0].version == newest
    assert len(idx.by_name["linux-kbuild-6.1"]) == len(versions)


def test_get_missing_and_names():
    idx = PackageIndex("sid", "arm64", [_pkg("a", "1"), _pkg("b", "1"), _pkg("a", "2")])
    assert idx.get("c") is None
    assert idx.names() == ["a", "b"]
    assert (idx.suite, idx.arch) == ("sid", "arm64")


# --- load_index against a file:// mirror --------------------------------------------------


@pytest.fixture
def file_mirror(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("KHARNESS_CACHE", str(cache))
    mirror = tmp_path / "mirror"
    d = mirror / "dists" / "bookworm" / "main" / "binary-amd64"
    d.mkdir(parents=True)
    xz = lzma.compress(PACKAGES.encode())
    (d / "Packages.xz").write_bytes(xz)
    monkeypatch.setenv("KHARNESS_DEBIAN_MIRROR", f"file://{mirror}")
    ring = tmp_path / "archive-keyring.gpg"
    ring.write_bytes(b"a keyring")
    monkeypatch.setenv("KHARNESS_KEYRING", str(ring))
    # The signature check is tested against a signed mirror in tests/integration/test_supply_chain.py;
    # here the Release is taken as verified, listing this Packages.xz (its hash is still checked).
    # Like the real one, it needs the keyring first; ``SIGNED["error"]`` makes it fail instead.
    import hashlib

    from kharness.debian import index
    from kharness.debian.release import SignedRelease, keyring

    SIGNED.update(error=None, calls=0)

    def release(mirror_url, suite):
        SIGNED["calls"] += 1
        keyring()
        if SIGNED["error"] is not None:
            raise SIGNED["error"]()
        if not (mirror / "dists" / suite / "main" / "binary-amd64" / "Packages.xz").exists():
            raise InfraError(f"download failed: {mirror_url}/dists/{suite}/InRelease")
        return SignedRelease(suite, ("test",), {"main/binary-amd64/Packages.xz": (hashlib.sha256(xz).hexdigest(), len(xz))})

    monkeypatch.setattr(index, "signed_release", release)
    return cache, mirror


SIGNED: dict = {}


def test_load_index_fetches_and_caches(file_mirror):
    cache, mirror = file_mirror
    idx = load_index("bookworm", "amd64")
    assert idx.get("linux-kbuild-6.1").sha256 == SHA_B
    cached = json.loads((cache / "index" / "bookworm_amd64.json").read_text())
    assert cached["url"] == f"file://{mirror}/dists/bookworm/main/binary-amd64/Packages.xz"
    assert len(cached["packages"]) == 7
    # Fresh cache: used even when the mirror is gone.
    (mirror / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.xz").unlink()
    again = load_index("bookworm", "amd64")
    assert sorted(again.names()) == sorted(idx.names())


def test_load_index_stale_cache_used_when_mirror_fails(file_mirror):
    cache, mirror = file_mirror
    load_index("bookworm", "amd64")
    path = cache / "index" / "bookworm_amd64.json"
    data = json.loads(path.read_text())
    data["fetched"] = time.time() - index_mod.INDEX_TTL - 10
    data["packages"] = data["packages"][:1]
    data["digest"] = index_mod._digest(data["packages"])   # a consistent (if stale) entry
    path.write_text(json.dumps(data))
    (mirror / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.xz").unlink()
    idx = load_index("bookworm", "amd64")
    assert idx.names() == ["linux-image-6.1.0-50-amd64"]


def test_load_index_no_cache_and_no_mirror_file(file_mirror):
    with pytest.raises(InfraError) as ei:
        load_index("trixie", "amd64")
    assert ei.value.message.startswith("could not read the trixie amd64 package index: ")


def test_load_index_corrupt_cache_is_refetched(file_mirror):
    cache, _ = file_mirror
    path = cache / "index" / "bookworm_amd64.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    idx = load_index("bookworm", "amd64")
    assert idx.get("busybox-static").version == "1:1.35.0-4+b3"
    assert json.loads(path.read_text())["packages"][0]["name"] == "linux-image-6.1.0-50-amd64"


# --- what a failed refresh does: remembered only for a real signature verdict --------------


def _make_stale(cache):
    path = cache / "index" / "bookworm_amd64.json"
    data = json.loads(path.read_text())
    data["fetched"] = time.time() - index_mod.INDEX_TTL - 10
    path.write_text(json.dumps(data))


@pytest.fixture
def said(monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(ui, "info", lambda msg: lines.append(msg))
    return lines


def _bad_signature():
    return SignatureRefused("the bookworm InRelease signature does not verify against ring: signed by key "
                            "62D20540D93AF411, which is revoked (REVKEYSIG): refusing it",
                            hint="set KHARNESS_KEYRING to the keyring of the mirror's signing key")


def test_a_missing_keyring_uses_the_verified_copy_and_is_not_remembered(file_mirror, monkeypatch, said):
    cache, _ = file_mirror
    load_index("bookworm", "amd64")
    _make_stale(cache)
    ring = os.environ["KHARNESS_KEYRING"]
    monkeypatch.setenv("KHARNESS_KEYRING", "/nonexistent")
    idx = load_index("bookworm", "amd64")
    assert idx.get("linux-kbuild-6.1").sha256 == SHA_B
    assert len(said) == 1 and "could not refresh the bookworm amd64 index (the archive keyring /nonexistent " \
        "is missing" in said[0] and "using the copy verified on" in said[0]
    assert not (cache / "index" / "bookworm_amd64.refused").exists()
    monkeypatch.setenv("KHARNESS_KEYRING", ring)
    calls = SIGNED["calls"]
    load_index("bookworm", "amd64")
    assert SIGNED["calls"] == calls + 1


def test_the_missing_keyring_hint_works_on_the_next_run(file_mirror, monkeypatch):
    ring = os.environ["KHARNESS_KEYRING"]
    monkeypatch.setenv("KHARNESS_KEYRING", "/nonexistent")
    with pytest.raises(InfraError) as ei:
        load_index("bookworm", "amd64")
    assert "the archive keyring /nonexistent is missing" in ei.value.message
    assert "KHARNESS_KEYRING" in ei.value.hint
    monkeypatch.setenv("KHARNESS_KEYRING", ring)          # what the hint says
    assert load_index("bookworm", "amd64").get("busybox-static") is not None


def test_a_captive_portal_page_uses_the_verified_copy_and_is_not_remembered(file_mirror, said):
    cache, _ = file_mirror
    load_index("bookworm", "amd64")
    _make_stale(cache)

    def portal():   # real gpgv on the page a captive portal serves instead of InRelease
        try:
            verify_inrelease("bookworm", b"<html><body>Accept the terms to go online</body></html>\n")
        except InfraError as e:
            return e
        raise AssertionError("gpgv accepted an HTML page")

    SIGNED["error"] = portal
    assert load_index("bookworm", "amd64").get("busybox-static") is not None
    assert len(said) == 1 and "not a signed file" in said[0]
    assert not (cache / "index" / "bookworm_amd64.refused").exists()
    with pytest.raises(InfraError, match="not a signed file"):
        load_index("trixie", "amd64")                     # no copy to fall back on: the error


def test_a_bad_signature_is_refused_even_with_a_copy_and_remembered(file_mirror):
    cache, _ = file_mirror
    load_index("bookworm", "amd64")
    _make_stale(cache)
    SIGNED["error"] = _bad_signature
    with pytest.raises(InfraError) as ei:
        load_index("bookworm", "amd64")
    assert "which is revoked (REVKEYSIG): refusing it" in ei.value.message
    calls = SIGNED["calls"]
    with pytest.raises(InfraError) as again:
        load_index("bookworm", "amd64")                   # remembered: not fetched again
    assert SIGNED["calls"] == calls and again.value.message == ei.value.message
    with pytest.raises(InfraError):
        load_index("bookworm", "amd64", refresh=True)     # an explicit refresh checks again
    assert SIGNED["calls"] == calls + 1


def test_a_remembered_refusal_does_not_block_the_fix_its_hint_names(file_mirror, monkeypatch, tmp_path):
    SIGNED["error"] = _bad_signature
    with pytest.raises(InfraError, match="set KHARNESS_KEYRING"):
        load_index("bookworm", "amd64")
    SIGNED["error"] = None
    other = tmp_path / "the-mirrors-keyring.gpg"
    other.write_bytes(b"another keyring")
    monkeypatch.setenv("KHARNESS_KEYRING", str(other))    # what the hint says
    assert load_index("bookworm", "amd64").get("busybox-static") is not None
    # The same holds for a keyring updated in place (a new debian-archive-keyring).
    SIGNED["error"] = _bad_signature
    with pytest.raises(InfraError):
        load_index("bookworm", "amd64", refresh=True)
    SIGNED["error"] = None
    other.write_bytes(b"the updated keyring")
    assert load_index("bookworm", "amd64").get("busybox-static") is not None


def test_an_index_that_is_not_the_signed_one_is_refused_but_not_remembered(file_mirror):
    cache, _ = file_mirror
    load_index("bookworm", "amd64")
    _make_stale(cache)
    SIGNED["error"] = lambda: IndexRefused("bookworm/main/binary-amd64/Packages.xz is 5 bytes, the signed "
                                           "Release says 6: refusing it")
    for _ in range(2):
        calls = SIGNED["calls"]
        with pytest.raises(InfraError, match="refusing it"):
            load_index("bookworm", "amd64")
        assert SIGNED["calls"] == calls + 1
    assert not (cache / "index" / "bookworm_amd64.refused").exists()


def test_an_older_kharness_refusal_record_is_not_a_reason_to_refuse(file_mirror):
    cache, _ = file_mirror
    (cache / "index").mkdir(parents=True)
    (cache / "index" / "bookworm_amd64.refused").write_text(
        "could not read the bookworm amd64 package index: the archive keyring /x is missing")
    assert load_index("bookworm", "amd64").get("busybox-static") is not None
