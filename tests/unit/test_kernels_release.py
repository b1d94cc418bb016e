"""Valid-Until: ignored by default (dated snapshots of the archive are signed but expired),
enforced with KHARNESS_CHECK_VALID_UNTIL=1."""

from __future__ import annotations

import pytest
from debian.deb822 import Release

from kharness.errors import InfraError
from kharness.kernels.release import check_valid_until

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
