"""Valid-Until: ignored by default (dated snapshots of the archive are signed but expired),
enforced with KHARNESS_CHECK_VALID_UNTIL=1. gpgv's status read as apt reads it: a signature by an
expired or revoked key is refused although gpgv exits 0 with a VALIDSIG."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from debian.deb822 import Release

from kharness.errors import InfraError
from kharness.debian.release import (
    IndexRefused,
    SignatureRefused,
    check_valid_until,
    judge_status,
    verify_inrelease,
)

REL = Release("Suite: bookworm-backports\nValid-Until: Wed, 02 Dec 2026 00:00:00 UTC\n")
AFTER = 1796169600.0 + 3600      # 2026-12-02 01:00 UTC
BEFORE = 1796169600.0 - 3600


def test_ignored_by_default(monkeypatch):
    monkeypatch.delenv("KHARNESS_CHECK_VALID_UNTIL", raising=False)
    check_valid_until(REL, "bookworm-backports", now=AFTER)


def test_enforced_when_asked(monkeypatch):
    monkeypatch.setenv("KHARNESS_CHECK_VALID_UNTIL", "1")
    check_valid_until(REL, "bookworm-backports", now=BEFORE)
    check_valid_until(Release("Suite: bookworm\n"), "bookworm", now=AFTER)   # no Valid-Until: nothing to check
    with pytest.raises(InfraError) as e:
        check_valid_until(REL, "bookworm-backports", now=AFTER)
    assert "expired on Wed, 02 Dec 2026" in str(e.value) and "refusing it" in str(e.value)
    with pytest.raises(InfraError):
        check_valid_until(Release("Valid-Until: soon\n"), "x", now=AFTER)


# --- gpgv's verdict, read as apt reads it ---------------------------------------------------
# Status lines as gpgv 2.2 prints them (recorded from real runs against throwaway keys; the real
# keys and gpgv are exercised in tests/integration/test_supply_chain.py).

FPR = "1AD583489EF49AD6A4AD165162D20540D93AF411"
VALID = f"[GNUPG:] VALIDSIG {FPR} 2026-11-22 1795359542 0 4 0 22 8 01 {FPR}"
EXPIRED = ["[GNUPG:] NEWSIG", f"[GNUPG:] KEY_CONSIDERED {FPR} 0", "[GNUPG:] KEYEXPIRED 1795431942",
           "[GNUPG:] EXPKEYSIG 62D20540D93AF411 exp <e@example.invalid>", VALID]
REVOKED = ["[GNUPG:] NEWSIG", f"[GNUPG:] KEY_CONSIDERED {FPR} 0",
           "[GNUPG:] REVKEYSIG 62D20540D93AF411 rev <r@example.invalid>", VALID]
GOOD = ["[GNUPG:] NEWSIG", "[GNUPG:] GOODSIG 62D20540D93AF411 good <g@example.invalid>", VALID]
MISSING_KEY = ["[GNUPG:] NEWSIG",
               "[GNUPG:] ERRSIG 5E63226A04D5F212 22 8 01 1796209542 9 5AD9D8E5E0BA0D654BFC93B85E63226A04D5F212",
               "[GNUPG:] NO_PUBKEY 5E63226A04D5F212"]


def test_a_good_signature_is_good():
    assert judge_status(GOOD) == ((FPR,), None, True)


@pytest.mark.parametrize("status,why", [
    (EXPIRED, "signed by key 62D20540D93AF411, which has expired (EXPKEYSIG)"),
    (REVOKED, "signed by key 62D20540D93AF411, which is revoked (REVKEYSIG)"),
    (["[GNUPG:] NEWSIG", "[GNUPG:] BADSIG 62D20540D93AF411 x <x@example.invalid>"],
     "bad signature by key 62D20540D93AF411 (BADSIG)"),
    (["[GNUPG:] NEWSIG", "[GNUPG:] ERRSIG 62D20540D93AF411 99 8 01 1796209542 4 -"],
     "cannot check the signature by key 62D20540D93AF411 (ERRSIG 4)"),
    (MISSING_KEY, "no signature by a key in the keyring (NO_PUBKEY 5E63226A04D5F212)"),
    (["[GNUPG:] NEWSIG"], "no valid signature"),
])
def test_refused_even_beside_a_validsig(status, why):
    assert judge_status(status)[1:] == (why, True)


def test_an_expired_key_is_refused_even_beside_a_good_one():
    assert judge_status(GOOD + EXPIRED)[1] == "signed by key 62D20540D93AF411, which has expired (EXPKEYSIG)"


def test_a_key_missing_from_the_keyring_is_ignored_beside_a_good_signature():
    # Debian signs with several keys; an older keyring lacks the newest (as apt, no refusal).
    assert judge_status(MISSING_KEY + GOOD) == ((FPR,), None, True)


def test_no_openpgp_data_is_not_a_verdict():
    assert judge_status(["[GNUPG:] NODATA 1", "[GNUPG:] NODATA 2"]) == ((), "no valid signature", False)


def _fake_gpgv(tmp_path, monkeypatch, status: list[str], rc: int = 0) -> None:
    """A gpgv that prints ``status`` and writes the clear text, exit ``rc``: what gpgv 2.2 does for
    an expired or revoked key (exit 0, a VALIDSIG)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "gpgv"
    lines = "\n".join(status)
    script.write_text("#!/bin/sh\n"
                      "while [ $# -gt 1 ]; do [ \"$1\" = --output ] && out=$2; shift; done\n"
                      "printf 'Suite: bookworm\\nSHA256:\\n 00 1 main/x\\n' > \"$out\"\n"
                      f"cat <<'EOS'\n{lines}\nEOS\nexit {rc}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


@pytest.mark.parametrize("status,word", [(EXPIRED, "has expired"), (REVOKED, "is revoked")])
def test_verify_inrelease_refuses_what_gpgv_passes(tmp_path, monkeypatch, status, word):
    _fake_gpgv(tmp_path, monkeypatch, status)
    ring = tmp_path / "ring.gpg"
    ring.write_bytes(b"")
    with pytest.raises(SignatureRefused) as e:
        verify_inrelease("bookworm", b"signed", ring)
    assert "62D20540D93AF411" in e.value.message and word in e.value.message
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_verify_inrelease_accepts_a_good_signature(tmp_path, monkeypatch):
    _fake_gpgv(tmp_path, monkeypatch, GOOD)
    ring = tmp_path / "ring.gpg"
    ring.write_bytes(b"")
    rel = verify_inrelease("bookworm", b"signed", ring)
    assert rel.signers == (FPR,) and rel.files == {"main/x": ("00", 1)}


def test_a_page_that_is_not_signed_is_no_signature_verdict(tmp_path):
    # Real gpgv on a captive portal's page: a plain InfraError (not remembered, see index.py).
    ring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if not ring.is_file():
        pytest.skip("no debian-archive-keyring")
    with pytest.raises(InfraError) as e:
        verify_inrelease("bookworm", b"<html><body>Log in to the hotel wifi</body></html>\n", ring)
    assert not isinstance(e.value, (SignatureRefused, IndexRefused))
    assert "not a signed file" in e.value.message


def test_an_index_longer_than_signed_is_refused_without_reading_it_all(tmp_path):
    from kharness.debian.release import SignedRelease

    mirror = tmp_path / "mirror"
    (mirror / "dists/bookworm/main").mkdir(parents=True)
    (mirror / "dists/bookworm/main/Packages.xz").write_bytes(b"x" * 100)
    rel = SignedRelease("bookworm", ("test",), {"main/Packages.xz": ("0" * 64, 5)})
    with pytest.raises(IndexRefused) as e:
        rel.fetch(mirror.as_uri(), "main/Packages.xz")
    assert e.value.message.endswith("the server announces 100 bytes, the signed Release says 5: refusing it")
