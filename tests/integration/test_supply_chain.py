"""The verified supply chain against a mirror served on loopback and signed by a test key: a good
mirror verifies; a tampered index, a broken signature, a foreign signer, a signature by an expired
or a revoked key, a tampered cached index or .deb are each refused or re-fetched, never used. A
refusal is remembered only for the mirror and keyring that gave it; a page that is no signed file
(a captive portal) is no refusal: the copy verified earlier is used."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import lzma
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from kharness.errors import InfraError

PARA = """Package: busybox-static
Version: 1:1.35.0-4+b3
Architecture: amd64
Filename: pool/main/b/busybox/busybox-static_1.35.0-4+b3_amd64.deb
Size: {size}
SHA256: {sha}
Depends: libc6
"""


@dataclass
class Keys:
    env: dict                   # GNUPGHOME for gpg, holding the secret keys
    ring: Path                  # the keyring given to gpgv: every test key, the revoked one with its revocation
    good: str                   # fingerprints
    expired: str
    revoked: str
    before_expiry: int          # a time (seconds since the epoch) when the expired key was still valid


def _gpg(env: dict, *args: str, faked_time: int | None = None) -> subprocess.CompletedProcess:
    faked = ["--faked-system-time", f"{faked_time}!"] if faked_time is not None else []
    return subprocess.run(["gpg", "--batch", "--yes", "--passphrase", "", *faked, *args], env=env, check=True,
                          capture_output=True, text=True, timeout=120)


def _fingerprint(env: dict, uid: str) -> str:
    out = _gpg(env, "--with-colons", "--list-keys", uid).stdout
    return next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory):
    """Three throwaway keys: a good one; one made ten days ago that expired a day later (so it
    signs only at a faked time); one revoked after it was made, its revocation in the keyring."""
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    ring_home = tmp_path_factory.mktemp("gnupg-ring")   # assembles the keyring gpgv gets
    os.chmod(ring_home, 0o700)
    ring_env = dict(os.environ, GNUPGHOME=str(ring_home))
    try:
        now = int(time.time())
        made = now - 10 * 86400
        _gpg(env, "--quick-gen-key", "kharness test <t@example.invalid>", "ed25519", "sign", "never")
        _gpg(env, "--quick-gen-key", "kharness expired <e@example.invalid>", "ed25519", "sign", "1d",
             faked_time=made)
        _gpg(env, "--quick-gen-key", "kharness revoked <r@example.invalid>", "ed25519", "sign", "never")
        good, expired, revoked = (_fingerprint(env, u) for u in ("t@example", "e@example", "r@example"))
        pub = home / "pub.gpg"
        _gpg(env, "--export", "--output", str(pub))
        # gpg writes a revocation certificate for every new key, ':'-quoted against an accidental
        # import; unquoted and imported into the keyring only, so the key can still sign here.
        cert = (home / "openpgp-revocs.d" / f"{revoked}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
        (home / "revoke.asc").write_text(cert)
        _gpg(ring_env, "--import", str(pub))
        _gpg(ring_env, "--import", str(home / "revoke.asc"))
        ring = home / "test-keyring.gpg"
        _gpg(ring_env, "--export", "--output", str(ring))
        yield Keys(env, ring, good, expired, revoked, before_expiry=made + 3600)
    finally:
        # gpg starts one gpg-agent per GNUPGHOME; it would outlive the test run (one per worker).
        for e in (env, ring_env):
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=e, capture_output=True, timeout=60)


class Mirror:
    def __init__(self, root: Path, keys: Keys):
        self.root, self.keys, self.env = root, keys, keys.env
        self.deb = b"!<arch>\nnot really a deb, but these are its bytes\n"
        self.write()

    def write(self, packages: bytes | None = None, sign: bool = True, signer: str | None = None,
              faked_time: int | None = None) -> None:
        pool = self.root / "pool/main/b/busybox"
        pool.mkdir(parents=True, exist_ok=True)
        (pool / "busybox-static_1.35.0-4+b3_amd64.deb").write_bytes(self.deb)
        d = self.root / "dists/bookworm/main/binary-amd64"
        d.mkdir(parents=True, exist_ok=True)
        text = PARA.format(size=len(self.deb), sha=hashlib.sha256(self.deb).hexdigest()).encode()
        xz = lzma.compress(text)
        (d / "Packages.xz").write_bytes(xz)
        release = ("Origin: Debian\nSuite: bookworm\nCodename: bookworm\nSHA256:\n"
                   f" {hashlib.sha256(xz).hexdigest()} {len(xz)} main/binary-amd64/Packages.xz\n")
        rel = self.root / "dists/bookworm/Release"
        rel.write_text(release)
        inrel = self.root / "dists/bookworm/InRelease"
        inrel.unlink(missing_ok=True)
        if sign:
            _gpg(self.env, "--local-user", signer or self.keys.good, "--clearsign", "--output", str(inrel), str(rel),
                 faked_time=faked_time)
        if packages is not None:          # tamper after signing
            (d / "Packages.xz").write_bytes(packages)


@pytest.fixture
def mirror(tmp_path, gpg_home, monkeypatch):
    m = Mirror(tmp_path / "mirror", gpg_home)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(m.root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    monkeypatch.setenv("KHARNESS_DEBIAN_MIRROR", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("KHARNESS_KEYRING", str(gpg_home.ring))
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KHARNESS_PROGRESS", "0")
    yield m
    srv.shutdown()
    srv.server_close()


def _load(refresh=True):
    from kharness.debian.index import load_index
    return load_index("bookworm", "amd64", refresh=refresh)


def test_a_signed_mirror_verifies_and_the_deb_is_checked(mirror, tmp_path):
    from kharness.debian.download import fetch_verified
    idx = _load()
    pkg = idx.get("busybox-static")
    assert pkg.sha256 == hashlib.sha256(mirror.deb).hexdigest()
    dest = tmp_path / "cache" / "b.deb"
    url = pkg.url(os.environ["KHARNESS_DEBIAN_MIRROR"])
    fetch_verified(url, dest, sha256=pkg.sha256, size=pkg.size, label="busybox-static")
    dest.write_bytes(b"tampered in the cache")                 # altered on disk: fetched again
    fetch_verified(url, dest, sha256=pkg.sha256, size=pkg.size, label="busybox-static")
    assert dest.read_bytes() == mirror.deb
    (mirror.root / pkg.filename).write_bytes(mirror.deb + b"x")  # the mirror serves a wrong .deb
    dest.unlink()
    with pytest.raises(InfraError, match="refusing it"):
        fetch_verified(url, dest, sha256=pkg.sha256, size=pkg.size, label="busybox-static")
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_a_tampered_index_is_refused_even_with_a_cached_copy(mirror):
    _load()                                                      # a good copy in the cache
    mirror.write(packages=lzma.compress(b"Package: busybox-static\nVersion: 9\n"))
    with pytest.raises(InfraError, match="the signed Release says .*refusing it"):
        _load()


def test_a_broken_or_missing_or_foreign_signature_is_refused(mirror, monkeypatch):
    inrel = mirror.root / "dists/bookworm/InRelease"
    inrel.write_text(inrel.read_text().replace("Suite: bookworm", "Suite: bookwurm"))
    with pytest.raises(InfraError, match="signature does not verify"):
        _load()
    mirror.write(sign=False)
    with pytest.raises(InfraError, match="download failed"):
        _load()
    mirror.write()
    monkeypatch.setenv("KHARNESS_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg")
    with pytest.raises(InfraError, match="signature does not verify"):
        _load()
    monkeypatch.setenv("KHARNESS_KEYRING", str(mirror.root / "no-such-keyring.gpg"))
    with pytest.raises(InfraError, match="keyring .* is missing"):
        _load()


def test_an_altered_cached_index_is_refetched(mirror):
    from kharness.debian.index import _cache_path
    _load()
    path = _cache_path("bookworm", "amd64")
    data = json.loads(path.read_text())
    data["packages"][0]["sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    assert _load(refresh=False).get("busybox-static").sha256 == hashlib.sha256(mirror.deb).hexdigest()


def test_the_cli_refuses_with_exit_2(mirror, tmp_path):
    mirror.write(packages=b"garbage")
    import sys
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "kharness", "run", str(root / "examples" / "hello"), "--kernel", "6.1"],
                       capture_output=True, text=True, cwd=root)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 2 and last.startswith("kharness: error:") and last.endswith("refusing it"), p.stderr


def _cli_refusal(*args: str) -> tuple[int, str]:
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "kharness", *args], capture_output=True, text=True, cwd=root,
                       timeout=600)
    return p.returncode, p.stderr


@pytest.mark.parametrize("which,why", [("expired", "which has expired (EXPKEYSIG)"),
                                       ("revoked", "which is revoked (REVKEYSIG)")])
def test_a_signature_by_an_expired_or_revoked_key_is_refused(mirror, gpg_home, which, why):
    # gpgv calls both good (exit 0, VALIDSIG); apt refuses both, and so does kharness.
    fpr = getattr(gpg_home, which)
    mirror.write(signer=fpr, faked_time=gpg_home.before_expiry if which == "expired" else None)
    with pytest.raises(InfraError) as ei:
        _load()
    assert f"signed by key {fpr[-16:]}, {why}: refusing it" in ei.value.message, ei.value.message
    root = Path(__file__).resolve().parents[2]
    rc, err = _cli_refusal("run", str(root / "examples" / "hello"), "--kernel", "6.1")
    lines = err.strip().splitlines()
    assert rc == 2 and lines[-1].startswith("kharness: error:"), err
    assert f"key {fpr[-16:]}, {why}" in lines[-1], err


def test_a_refusal_is_remembered_only_for_the_keyring_that_gave_it(mirror, gpg_home, monkeypatch):
    # A keyring without the mirror's key: refused (NO_PUBKEY) and remembered, so a suite does not
    # fetch the index again per test...
    monkeypatch.setenv("KHARNESS_KEYRING", "/usr/share/keyrings/debian-archive-keyring.gpg")
    with pytest.raises(InfraError) as ei:
        _load()
    assert f"no signature by a key in the keyring (NO_PUBKEY {gpg_home.good[-16:]})" in ei.value.message
    assert "KHARNESS_KEYRING" in ei.value.message          # the hint, on the same line
    inrel = mirror.root / "dists/bookworm/InRelease"
    signed = inrel.read_bytes()
    inrel.unlink()                                          # not fetched again: the verdict is remembered
    with pytest.raises(InfraError) as again:
        _load(refresh=False)
    assert again.value.message == ei.value.message
    # ...but doing what the hint says works at once, without a refresh.
    inrel.write_bytes(signed)
    monkeypatch.setenv("KHARNESS_KEYRING", str(gpg_home.ring))
    assert _load(refresh=False).get("busybox-static") is not None


def test_a_captive_portal_page_is_no_refusal(mirror):
    from kharness.debian.index import INDEX_TTL, _cache_path
    _load()
    path = _cache_path("bookworm", "amd64")
    data = json.loads(path.read_text())
    data["fetched"] -= INDEX_TTL + 60                       # due for a refresh
    path.write_text(json.dumps(data))
    (mirror.root / "dists/bookworm/InRelease").write_text("<html><body>Accept the terms</body></html>\n")
    assert _load(refresh=False).get("busybox-static") is not None   # the copy verified earlier
    assert not path.with_suffix(".refused").exists()
    mirror.write()                                          # online again: refreshed as usual
    _load(refresh=False)
    assert json.loads(path.read_text())["fetched"] > data["fetched"] + INDEX_TTL
