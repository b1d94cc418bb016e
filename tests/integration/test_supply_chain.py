"""The verified supply chain against a mirror served on loopback and signed by a test key: a good
mirror verifies; a tampered index, a broken signature, a foreign signer, a tampered cached index
or .deb are each refused or re-fetched, never used."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import lzma
import os
import subprocess
import threading
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


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "kharness test <t@example.invalid>",
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    ring = home / "test-keyring.gpg"
    subprocess.run(["gpg", "--batch", "--export", "--output", str(ring)], env=env, check=True)
    return env, ring


class Mirror:
    def __init__(self, root: Path, env: dict):
        self.root, self.env = root, env
        self.deb = b"!<arch>\nnot really a deb, but these are its bytes\n"
        self.write()

    def write(self, packages: bytes | None = None, sign: bool = True) -> None:
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
            subprocess.run(["gpg", "--batch", "--yes", "--clearsign", "--output", str(inrel), str(rel)],
                           env=self.env, check=True, capture_output=True)
        if packages is not None:          # tamper after signing
            (d / "Packages.xz").write_bytes(packages)


@pytest.fixture
def mirror(tmp_path, gpg_home, monkeypatch):
    env, ring = gpg_home
    m = Mirror(tmp_path / "mirror", env)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(m.root))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("KHARNESS_DEBIAN_MIRROR", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("KHARNESS_KEYRING", str(ring))
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KHARNESS_PROGRESS", "0")
    yield m
    srv.shutdown()


def _load(refresh=True):
    from kharness.kernels.index import load_index
    return load_index("bookworm", "amd64", refresh=refresh)


def test_a_signed_mirror_verifies_and_the_deb_is_checked(mirror, tmp_path):
    from kharness.kernels.download import fetch_verified
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


def test_a_broken_or_missing_or_foreign_signature_is_refused(mirror, gpg_home):
    inrel = mirror.root / "dists/bookworm/InRelease"
    inrel.write_text(inrel.read_text().replace("Suite: bookworm", "Suite: bookwurm"))
    with pytest.raises(InfraError, match="signature does not verify"):
        _load()
    mirror.write(sign=False)
    with pytest.raises(InfraError, match="download failed"):
        _load()
    mirror.write()
    os.environ["KHARNESS_KEYRING"] = "/usr/share/keyrings/debian-archive-keyring.gpg"
    with pytest.raises(InfraError, match="signature does not verify"):
        _load()
    os.environ["KHARNESS_KEYRING"] = str(mirror.root / "no-such-keyring.gpg")
    with pytest.raises(InfraError, match="keyring .* is missing"):
        _load()


def test_an_altered_cached_index_is_refetched(mirror):
    from kharness.kernels.index import _cache_path
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
