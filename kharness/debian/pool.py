"""Packages from the archive's pool: verified .deb downloads, cached under their SHA256."""

from __future__ import annotations

from pathlib import Path

from kharness.debian.download import fetch_verified
from kharness.debian.index import Pkg
from kharness.debian.mirror import debian_mirror
from kharness.paths import cache_dir


def fetch_pkg(pkg: Pkg) -> Path:
    """The verified .deb for ``pkg`` in the download cache."""
    dest = cache_dir() / "debs" / f"{pkg.sha256}.deb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return fetch_verified(pkg.url(debian_mirror()), dest, sha256=pkg.sha256, size=pkg.size,
                          label=f"{pkg.name} {pkg.version}")
