"""The signed root of trust, as apt does it: a suite's ``InRelease`` is verified with ``gpgv``
against the Debian archive keyring, and every index kharness reads must match the SHA256 and size
the verified Release lists for it. Packages then carry the SHA256 of each .deb (see download.py).

Nothing falls back silently: a missing keyring, a bad or missing signature, or an index whose
hash is not the signed one is an infrastructure error (exit 2) naming what failed.

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

from debian.deb822 import Release

from kharness.errors import InfraError
from kharness.kernels.download import fetch_bytes

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def keyring() -> Path:
    k = Path(os.environ.get("KHARNESS_KEYRING") or DEFAULT_KEYRING)
    if not k.is_file():
        raise InfraError(f"the archive keyring {k} is missing: cannot verify Debian's signatures",
                         hint="install debian-archive-keyring (make install) or set KHARNESS_KEYRING")
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
            raise InfraError(f"{path} is not listed in the signed {self.suite} Release: refusing it")
        base = f"{mirror}/dists/{self.suite}"
        if self.by_hash:
            d = path.rsplit("/", 1)[0]
            try:
                return self.verify(path, fetch_bytes(f"{base}/{d}/by-hash/SHA256/{want[0]}"))
            except InfraError as e:
                if "refusing it" in str(e):
                    raise
        return self.verify(path, fetch_bytes(f"{base}/{path}"))

    def verify(self, path: str, data: bytes) -> bytes:
        """``data`` if it is the file the signed Release lists under ``path``; else refuse it."""
        want = self.files.get(path)
        if want is None:
            raise InfraError(f"{path} is not listed in the signed {self.suite} Release: refusing it")
        sha, size = want
        if len(data) != size:
            raise InfraError(f"{self.suite}/{path} is {len(data)} bytes, the signed Release says {size}: refusing it")
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            raise InfraError(f"{self.suite}/{path} has SHA256 {got}, the signed Release says {sha}: refusing it")
        return data


def verify_inrelease(suite: str, signed: bytes, ring: Path | None = None) -> SignedRelease:
    """Check the clearsigned ``InRelease`` with gpgv; parse the verified content only."""
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise InfraError("gpgv is not installed: cannot verify Debian's signatures", hint="run `make install`")
    ring = ring or keyring()
    with tempfile.TemporaryDirectory() as d:
        src, out = Path(d) / "InRelease", Path(d) / "Release"
        src.write_bytes(signed)
        p = subprocess.run([gpgv, "--status-fd", "1", "--keyring", str(ring), "--output", str(out), str(src)],
                           capture_output=True, text=True)
        status = p.stdout.splitlines()
        good = [ln.split()[2] for ln in status if ln.startswith("[GNUPG:] VALIDSIG ")]
        # Like apt: at least one good signature from the keyring and no bad one. A signature by a
        # key the keyring lacks (ERRSIG with return code 9, e.g. a newer release key) is ignored.
        bad = [ln for ln in status if ln.startswith("[GNUPG:] BADSIG")
               or (ln.startswith("[GNUPG:] ERRSIG") and (len(ln.split()) < 8 or ln.split()[7] != "9"))]
        if not good or bad or not out.is_file():
            why = "; ".join(ln.removeprefix("[GNUPG:] ") for ln in status if "SIG" in ln) or \
                (p.stderr.strip().splitlines() or ["no signature"])[-1]
            raise InfraError(f"the {suite} InRelease signature does not verify against {ring}: {why}")
        text = out.read_text(errors="replace")
    rel = Release(text)
    check_valid_until(rel, suite)
    files = {}
    for entry in rel.get("SHA256", []):
        files[entry["name"]] = (entry["sha256"], int(entry["size"]))
    if not files:
        raise InfraError(f"the signed {suite} Release lists no SHA256 sums: refusing it")
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
        raise InfraError(f"the signed {suite} Release expired on {rel['Valid-Until']}: refusing it (a replayed "
                         f"or stale mirror)", hint="use a current mirror, or unset KHARNESS_CHECK_VALID_UNTIL "
                                                   "for a dated snapshot of the archive")


def signed_release(mirror: str, suite: str) -> SignedRelease:
    return verify_inrelease(suite, fetch_bytes(f"{mirror}/dists/{suite}/InRelease"))
