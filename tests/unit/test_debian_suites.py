"""Unit tests for kharness.debian.suites: which suites the mirror has, read from signed Release files.

The InRelease files are fabricated and really clearsigned with a throwaway key (gpgv checks them
as it checks Debian's); "the mirror" is a dict served through a fake fetch_bytes (no network).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error

import pytest

from kharness.debian import suites
from kharness.debian.suites import Suite, alias_names, archive_suites, release_fields, signed_payload
from kharness.errors import InfraError

MIRROR = "http://127.0.0.1:9/debian"


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "kharness test <t@example.invalid>",
                    "ed25519", "sign", "never"], env=env, check=True, capture_output=True)
    ring = home / "ring.gpg"
    subprocess.run(["gpg", "--batch", "--export", "--output", str(ring)], env=env, check=True)

    def sign(text: str) -> bytes:
        p = subprocess.run(["gpg", "--batch", "--clearsign"], input=text.encode(), env=env,
                           check=True, capture_output=True)
        return p.stdout

    yield sign, ring
    # gpg starts a gpg-agent per GNUPGHOME; it would outlive the test run.
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True, timeout=60)


def _release(suite: str, codename: str) -> str:
    # Recorded shape of the archive's Release (fields trimmed); a line starting with "-" is
    # dash-escaped by the signer and must read back unchanged.
    return (f"Origin: Debian\nLabel: Debian\nSuite: {suite}\nCodename: {codename}\n"
            "Date: Sat, 12 Sep 2026 07:55:41 UTC\nAcquire-By-Hash: yes\n"
            "Description: Debian x.y Released 12 September 2026\n -- a dash-escaped line\n"
            "SHA256:\n"
            f" {'ab' * 32}  1234 main/binary-amd64/Packages.xz\n")


# The mirror of December 2026: alias -> (Suite, Codename); a codename is served under both names.
ARCHIVE = {
    "oldoldstable": "bullseye", "oldstable": "bookworm", "stable": "trixie", "testing": "forky",
    "unstable": "sid", "oldstable-backports": "bookworm-backports", "stable-backports": "trixie-backports",
}


@pytest.fixture
def mirror(signer, monkeypatch, tmp_path):
    sign, ring = signer
    files: dict[str, bytes] = {}
    for alias, code in ARCHIVE.items():
        body = sign(_release(alias, code))
        files[f"{MIRROR}/dists/{alias}/InRelease"] = body
        files[f"{MIRROR}/dists/{code}/InRelease"] = body
    fetched: list[str] = []

    def fetch(url, **kw):
        fetched.append(url)
        if url not in files:
            err = urllib.error.HTTPError(url, 404, "Not Found", None, None)
            raise InfraError(f"download failed: {url}: {err}") from err
        return files[url]

    monkeypatch.setattr(suites, "fetch_bytes", fetch)
    monkeypatch.setenv("KHARNESS_DEBIAN_MIRROR", MIRROR)
    monkeypatch.setenv("KHARNESS_KEYRING", str(ring))
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    return files, fetched, sign


def test_the_mirror_says_what_each_suite_is(mirror):
    assert archive_suites() == [
        Suite("bullseye", "oldoldstable"), Suite("bookworm", "oldstable"),
        Suite("bookworm-backports", "oldstable-backports"), Suite("trixie", "stable"),
        Suite("trixie-backports", "stable-backports"), Suite("forky", "testing"), Suite("sid", "unstable")]


def test_aliases_come_from_the_release_files(mirror):
    names = alias_names(archive_suites())
    assert names["stable"] == "trixie" and names["oldstable"] == "bookworm"
    assert names["unstable"] == "sid" and names["testing"] == "forky"
    assert names["backports"] == "trixie-backports"          # the stable release's backports
    assert names["sid"] == "sid"


def test_bullseye_leaving_the_mirror_is_no_error(mirror):
    files, _, _ = mirror
    for key in [k for k in files if "/oldoldstable/" in k or "/bullseye/" in k]:
        del files[key]
    assert "bullseye" not in [s.name for s in archive_suites()]


def test_a_release_moving_on_moves_the_aliases(mirror):
    files, _, sign = mirror
    files[f"{MIRROR}/dists/stable/InRelease"] = sign(_release("stable", "forky"))
    files[f"{MIRROR}/dists/forky-backports/InRelease"] = sign(_release("stable-backports", "forky-backports"))
    names = alias_names(archive_suites())
    assert names["stable"] == "forky" and names["backports"] == "forky-backports"


def test_a_codename_only_mirror_still_works(mirror):
    files, _, sign = mirror
    files.clear()
    files[f"{MIRROR}/dists/bookworm/InRelease"] = sign(_release("bookworm", "bookworm"))
    assert archive_suites() == [Suite("bookworm", "")]


def test_the_list_is_cached_then_reread(mirror, monkeypatch):
    _, fetched, _ = mirror
    first = archive_suites()
    n = len(fetched)
    assert archive_suites() == first and len(fetched) == n      # within SUITES_TTL: no request
    monkeypatch.setattr(suites, "SUITES_TTL", -1)
    archive_suites()
    assert len(fetched) > n


def test_unreachable_mirror_uses_the_list_read_earlier(mirror, monkeypatch):
    files, _, _ = mirror
    first = archive_suites()
    monkeypatch.setattr(suites, "SUITES_TTL", -1)

    def down(url, **kw):
        raise InfraError(f"download failed: {url}: [Errno 111] Connection refused")

    monkeypatch.setattr(suites, "fetch_bytes", down)
    assert archive_suites() == first


def test_unreachable_mirror_on_first_use_tries_the_codenames_last_known(mirror, monkeypatch):
    monkeypatch.setattr(suites, "fetch_bytes",
                        lambda url, **kw: (_ for _ in ()).throw(InfraError(f"download failed: {url}: timed out")))
    assert [s.name for s in archive_suites()] == ["bullseye", "bookworm", "bookworm-backports", "trixie", "sid"]


def test_a_bad_signature_is_refused_not_skipped(mirror):
    files, _, _ = mirror
    for key in list(files):
        files[key] = files[key].replace(b"Suite: ", b"Suite:  ")
    with pytest.raises(InfraError, match="signature does not verify"):
        archive_suites()


def test_text_outside_the_signed_block_is_refused(mirror):
    files, _, _ = mirror
    key = f"{MIRROR}/dists/stable/InRelease"
    files[key] = b"Suite: stable\nCodename: evil\n\n" + files[key]
    with pytest.raises(InfraError, match="refusing it"):
        suites.read_suite(MIRROR, "stable")


def test_architectures_are_read(mirror):
    files, _, sign = mirror
    files[f"{MIRROR}/dists/oldoldstable/InRelease"] = sign(
        _release("oldoldstable", "bullseye").replace("Date:", "Architectures: all amd64 arm64 armhf i386\nDate:"))
    bullseye = archive_suites()[0]
    assert bullseye.archs == ("all", "amd64", "arm64", "armhf", "i386")
    assert bullseye.has_arch("amd64") and not bullseye.has_arch("ppc64el")
    assert archive_suites()[0] == bullseye             # kept in the cache too


def test_payload_reads_back_dash_escaped_lines(signer):
    sign, _ = signer
    text = _release("stable", "trixie")
    assert signed_payload(sign(text)) == text


def test_fields_must_be_the_verified_ones(signer):
    sign, ring = signer
    from kharness.debian.release import verify_inrelease
    good = sign(_release("stable", "trixie"))
    verified = verify_inrelease("stable", good, ring)
    assert release_fields(good, verified) == ("stable", "trixie", ())
    other = sign(_release("stable", "trixie").replace("1234", "999"))
    with pytest.raises(InfraError, match="refusing it"):
        release_fields(other, verified)


def test_a_strange_codename_is_refused(mirror):
    files, _, sign = mirror
    files[f"{MIRROR}/dists/stable/InRelease"] = sign(_release("stable", "../../etc"))
    with pytest.raises(InfraError, match="refusing it"):
        suites.read_suite(MIRROR, "stable")


def test_a_cache_for_another_mirror_is_not_used(mirror, monkeypatch, tmp_path):
    archive_suites()
    path = tmp_path / "cache" / "index" / "suites.json"
    data = json.loads(path.read_text())
    data.update(mirror="http://127.0.0.1:8/other", fetched=time.time())
    path.write_text(json.dumps(data))
    assert [s.name for s in archive_suites()][0] == "bullseye"
    assert json.loads(path.read_text())["mirror"] == MIRROR
