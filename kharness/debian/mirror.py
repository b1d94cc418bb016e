"""Which Debian mirror to use.

The mirror is never written into kharness: it comes from ``$KHARNESS_DEBIAN_MIRROR``, else from
the host's apt source lists (deb822 ``*.sources`` files and one-line ``sources.list`` entries).
"""

from __future__ import annotations

import os
from pathlib import Path

from debian.deb822 import Deb822

from kharness.errors import InfraError

ENV_VAR = "KHARNESS_DEBIAN_MIRROR"
APT_DIR = Path("/etc/apt")

# Suites of the main archive (not -security, which lives in a separate archive tree).
_MAIN_SUITE_NAMES = {"bullseye", "bookworm", "trixie", "forky", "sid", "unstable", "testing", "stable"}


def _is_main_archive(uri: str, suites: list[str]) -> bool:
    if not uri.startswith(("http://", "https://", "file:/")):
        return False
    bases = {s.split("-")[0] for s in suites}
    return bool(bases & _MAIN_SUITE_NAMES) and not any(s.endswith("-security") for s in suites)


def parse_deb822_sources(text: str) -> list[str]:
    """Archive URIs from a deb822 ``.sources`` file, main-archive entries only."""
    uris = []
    for para in Deb822.iter_paragraphs(text.splitlines()):
        if para.get("Enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in para.get("Types", "").split():
            continue
        suites = para.get("Suites", "").split()
        for uri in para.get("URIs", "").split():
            if _is_main_archive(uri, suites):
                uris.append(uri.rstrip("/"))
    return uris


def parse_one_line_sources(text: str) -> list[str]:
    """Archive URIs from a one-line ``sources.list``: ``deb [opts] URI SUITE COMPONENT...``."""
    uris = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2 and _is_main_archive(words[0], [words[1]]):
            uris.append(words[0].rstrip("/"))
    return uris


def host_mirrors(apt_dir: Path = APT_DIR) -> list[str]:
    """Main-archive mirror URIs configured on this host, in apt's reading order."""
    found: list[str] = []
    one_line = apt_dir / "sources.list"
    if one_line.is_file():
        found += parse_one_line_sources(one_line.read_text(errors="replace"))
    part = apt_dir / "sources.list.d"
    if part.is_dir():
        for f in sorted(part.iterdir()):
            if f.suffix == ".sources":
                found += parse_deb822_sources(f.read_text(errors="replace"))
            elif f.suffix == ".list":
                found += parse_one_line_sources(f.read_text(errors="replace"))
    seen: list[str] = []
    for u in found:
        if u not in seen:
            seen.append(u)
    return seen


def debian_mirror(apt_dir: Path = APT_DIR) -> str:
    """The mirror to download from; raises :class:`InfraError` with the fix when there is none."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env.rstrip("/")
    mirrors = host_mirrors(apt_dir)
    if not mirrors:
        raise InfraError(
            "no Debian mirror found in the host's apt sources",
            hint=f"set {ENV_VAR}=<URL of a Debian archive mirror>",
        )
    return mirrors[0]
