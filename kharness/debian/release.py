"""The signed root of trust, as apt does it: a suite's ``InRelease`` is verified with ``gpgv``
against the Debian archive keyring, and every index kharness reads must match the SHA256 and size
the verified Release lists for it. Packages then carry the SHA256 of each .deb (see download.py).

Nothing falls back silently: a missing keyring, a bad or missing signature, or an index whose
hash is not the signed one is an infrastructure error (exit 2) naming what failed. Like apt, a
signature by an expired or revoked key does not count, although gpgv calls it good (exit 0).

Two kinds of refusal are told apart for the index cache (see index.py): :class:`SignatureRefused`
is a verdict on the archive's signature (remembered), :class:`IndexRefused` an index whose bytes
are not the signed ones (never used). Anything else (no keyring, no gpgv, a page that is not a
signed file at all) is a plain :class:`InfraError`: a local or network problem, not a verdict.

``KHARNESS_KEYRING`` names another keyring (a private mirror's, or a test's).
Valid-Until is not enforced by default: kharness also serves from dated snapshots of the archive,
whose Release files are signed but expired (as apt's ``Check-Valid-Until=false``).
``KHARNESS_CHECK_VALID_UNTIL=1`` enforces it, refusing a replayed (expired) Release.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kharness.debian.download import Oversized, fetch_bytes
from kharness.errors import InfraError

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


GPGV_TIMEOUT = 120           # seconds: gpgv checks a few signatures on a small file
IN_RELEASE_LIMIT = 16 << 20  # bytes: an InRelease is ~0.2 MB; a larger body is not one


class SignatureRefused(InfraError):
    """gpgv's verdict on the signature itself: bad, by an expired or revoked key, by no key of the
    keyring. The same file checked against the same keyring gives the same verdict."""


class IndexRefused(InfraError):
    """An index whose size or SHA256 is not what the signed Release lists (or that it does not list)."""


_SIG_HINT = ("update debian-archive-keyring, or set KHARNESS_KEYRING to the keyring of the mirror's "
             "signing key, or KHARNESS_DEBIAN_MIRROR to another mirror")

# gpgv status keywords that refuse a file whatever else it says (as apt: BADSIG is bad, an expired
# or revoked key's signature worthless), with why, for the one-line error.
_REFUSING = {
    "BADSIG": "bad signature by key {key}",
    "EXPKEYSIG": "signed by key {key}, which has expired",
    "REVKEYSIG": "signed by key {key}, which is revoked",
    "EXPSIG": "the signature by key {key} has expired",
}


def judge_status(status: list[str]) -> tuple[tuple[str, ...], str | None, bool]:
    """Read gpgv's ``--status-fd`` lines as apt does: ``(good fingerprints, why refused or None,
    signed)``. ``signed`` is False when the file held no OpenPGP signature at all (NODATA: an error
    page, a captive portal), which is no verdict on any key."""
    good: list[str] = []
    refused: list[str] = []
    no_pubkey: list[str] = []
    signed = False
    for ln in status:
        w = ln.split()
        if len(w) < 2 or w[0] != "[GNUPG:]":
            continue
        kw, args = w[1], w[2:]
        if kw == "NEWSIG":
            signed = True
        elif kw == "VALIDSIG" and args:
            signed = True
            good.append(args[0])
        elif kw in _REFUSING:
            signed = True
            refused.append(f"{_REFUSING[kw].format(key=args[0] if args else '?')} ({kw})")
        elif kw == "ERRSIG":
            signed = True
            # Return code 9: a key the keyring lacks (a newer release key beside a known one);
            # like apt, that alone is ignored when another signature is good. Others (4: an
            # unsupported algorithm) are a signature that cannot be checked: refused.
            if len(args) >= 6 and args[5] == "9":
                no_pubkey.append(args[0])
            else:
                refused.append(f"cannot check the signature by key {args[0] if args else '?'} "
                               f"(ERRSIG {args[5] if len(args) >= 6 else '?'})")
        elif kw == "NO_PUBKEY" and args and args[0] not in no_pubkey:
            no_pubkey.append(args[0])
    if refused:
        return tuple(good), "; ".join(refused), signed
    if not good:
        if no_pubkey:
            return (), f"no signature by a key in the keyring (NO_PUBKEY {', '.join(no_pubkey)})", signed
        return (), "no valid signature", signed
    return tuple(good), None, signed


def keyring() -> Path:
    k = Path(os.environ.get("KHARNESS_KEYRING") or DEFAULT_KEYRING)
    if not k.is_file():
        raise InfraError(f"the archive keyring {k} is missing: cannot verify Debian's signatures",
                         hint="run `kharness doctor --install` (debian-archive-keyring) or set KHARNESS_KEYRING")
    return k


@dataclass(frozen=True)
class SignedRelease:
    suite: str
    signers: tuple[str, ...]                   # fingerprints of the good signatures
    files: dict[str, tuple[str, int]]          # path under dists/<suite>/ -> (sha256, size)
    by_hash: bool = False                      # the archive serves indices under by-hash/SHA256/

    def fetch(self, mirror: str, path: str) -> bytes:
        """The index at ``path``, verified. Like apt, fetch it by its signed hash where the archive
        offers that: a mirror caught between two updates serves the new ``Packages.xz`` beside
        the old ``InRelease`` (seen here), but by-hash names exactly the signed file."""
        want = self.files.get(path)
        if want is None:
            raise IndexRefused(f"{path} is not listed in the signed {self.suite} Release: refusing it")
        base = f"{mirror}/dists/{self.suite}"
        if self.by_hash:
            d = path.rsplit("/", 1)[0]
            try:
                return self._fetch_signed(f"{base}/{d}/by-hash/SHA256/{want[0]}", path)
            except IndexRefused:
                raise
            except InfraError:
                pass             # no by-hash copy on this mirror: the plain path, verified the same way
        return self._fetch_signed(f"{base}/{path}", path)

    def _fetch_signed(self, url: str, path: str) -> bytes:
        # Never read more than the signed size (one byte over tells "too long" from "right"):
        # a longer body is not the signed file either.
        try:
            data = fetch_bytes(url, limit=self.files[path][1], limit_says="the signed Release says")
        except Oversized as e:
            raise IndexRefused(e.message) from None
        return self.verify(path, data)

    def verify(self, path: str, data: bytes) -> bytes:
        """``data`` if it is the file the signed Release lists under ``path``; else refuse it."""
        want = self.files.get(path)
        if want is None:
            raise IndexRefused(f"{path} is not listed in the signed {self.suite} Release: refusing it")
        sha, size = want
        if len(data) != size:
            raise IndexRefused(f"{self.suite}/{path} is {len(data)} bytes, the signed Release says {size}: refusing it")
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise IndexRefused(f"{self.suite}/{path} has SHA256 {got}, the signed Release says {sha}: refusing it")
        return data


def verify_inrelease(suite: str, signed: bytes, ring: Path | None = None) -> SignedRelease:
    """Check the clearsigned ``InRelease`` with gpgv; parse the verified content only."""
    from debian.deb822 import Release   # here: deb822 costs every run its import; few read a Release

    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise InfraError("gpgv is not installed: cannot verify Debian's signatures", hint="run `kharness doctor --install`")
    ring = ring or keyring()
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "InRelease", Path(d) / "Release"
        src.write_bytes(signed)
        try:
            p = subprocess.run([gpgv, "--status-fd", "1", "--keyring", str(ring), "--output", str(out), str(src)],
                               capture_output=True, text=True, timeout=GPGV_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InfraError(f"gpgv did not finish checking the {suite} InRelease within {GPGV_TIMEOUT} s") from None
        good, why, signed = judge_status(p.stdout.splitlines())
        if not signed:
            # Not a verdict on any key: the mirror (or a proxy, a captive portal) sent something
            # that is no signed file at all.
            raise InfraError(f"the {suite} InRelease from the mirror is not a signed file (gpgv: no OpenPGP "
                             f"data): a proxy or captive portal page?",
                             hint="check the network or KHARNESS_DEBIAN_MIRROR")
        if why is not None:
            raise SignatureRefused(f"the {suite} InRelease signature does not verify against {ring}: {why}: "
                                   f"refusing it", hint=_SIG_HINT)
        if p.returncode != 0 or not out.is_file():
            last = (p.stderr.strip().splitlines() or ["no output"])[-1]
            raise InfraError(f"gpgv failed on the {suite} InRelease (exit {p.returncode}): {last}")
        text = out.read_text(errors="replace")
    rel = Release(text)
    check_valid_until(rel, suite)
    files = {}
    for entry in rel.get("SHA256", []):
        files[entry["name"]] = (entry["sha256"], int(entry["size"]))
    if not files:
        raise IndexRefused(f"the signed {suite} Release lists no SHA256 sums: refusing it")
    return SignedRelease(suite, tuple(good), files, str(rel.get("Acquire-By-Hash", "")).lower() == "yes")


def check_valid_until(rel, suite: str, now: float | None = None) -> None:
    """With ``KHARNESS_CHECK_VALID_UNTIL=1``: refuse a Release past its ``Valid-Until``."""
    if os.environ.get("KHARNESS_CHECK_VALID_UNTIL", "") in ("", "0") or not rel.get("Valid-Until"):
        return
    from email.utils import parsedate_to_datetime
    import time

    try:
        until = parsedate_to_datetime(str(rel["Valid-Until"])).timestamp()
    except (TypeError, ValueError):
        raise InfraError(f"the signed {suite} Release has an unreadable Valid-Until {rel['Valid-Until']!r}") from None
    if (now if now is not None else time.time()) > until:
        raise IndexRefused(f"the signed {suite} Release expired on {rel['Valid-Until']}: refusing it (a replayed "
                         f"or stale mirror)", hint="use a current mirror, or unset KHARNESS_CHECK_VALID_UNTIL "
                                                   "for a dated snapshot of the archive")


def signed_release(mirror: str, suite: str) -> SignedRelease:
    return verify_inrelease(suite, fetch_bytes(f"{mirror}/dists/{suite}/InRelease", limit=IN_RELEASE_LIMIT))
