"""Which Debian mirror to use.

The mirror is never written into kharness: it comes from ``$KHARNESS_DEBIAN_MIRROR``, else from
the host's apt source lists (deb822 ``*.sources`` files and one-line ``sources.list`` entries).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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


# A field's first line, as python-debian's Deb822 reads it: the key, then the value stripped.
_FIELD_RE = re.compile(r"^(?P<key>[^: \t\n\r\f\v]+)\s*:\s*(?P<data>(?:\S+(\s+\S+)*)?)\s*$")


def deb822_paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of a deb822 text as python-debian's ``Deb822.iter_paragraphs`` reads them
    (keys lower-cased: Deb822 looks them up case-insensitively), without importing it: every run
    names the mirror from the host's apt sources, and python-debian's deb822 (with the email and
    logging modules it imports) would cost each run ~15 ms. tests/unit/test_debian_mirror.py
    checks the two agree. A line starting with ``#`` is a comment wherever it is; a blank (or
    whitespace-only) line ends a paragraph; an indented line continues the field before it; a
    paragraph without a field ends the text, as it ends Deb822's iteration. (PGP armor at the
    start of a line, which Deb822 strips and an apt sources file never holds, is not special.)"""
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    paragraphs: list[dict[str, str]] = []
    i = 0
    while True:
        while i < len(lines) and _blank(lines[i]):
            i += 1
        if i == len(lines):
            return paragraphs
        para: dict[str, str] = {}
        key = None
        while i < len(lines) and not _blank(lines[i]):
            line = lines[i]
            i += 1
            m = _FIELD_RE.match(line)
            if m:
                key = m.group("key").lower()
                para[key] = m.group("data")
            elif key is not None and line[0].isspace() and not line.isspace():
                para[key] += "\n" + line
        if not para:
            return paragraphs
        paragraphs.append(para)


def _blank(line: str) -> bool:
    # What ends a paragraph for Deb822: an empty line or one of ASCII whitespace only.
    return not line.strip(" \t\n\r\x0b\x0c")


def parse_deb822_sources(text: str) -> list[str]:
    """Archive URIs from a deb822 ``.sources`` file, main-archive entries only."""
    uris = []
    for para in deb822_paragraphs(text):
        if para.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in para.get("types", "").split():
            continue
        suites = para.get("suites", "").split()
        for uri in para.get("uris", "").split():
            if _is_main_archive(uri, suites):
                uris.append(uri.rstrip("/"))
    return uris


def _one_line_entries(text: str) -> list[tuple[str, str]]:
    """``(URI, suite)`` of each ``deb`` line of a one-line ``sources.list``:
    ``deb [opts] URI SUITE COMPONENT...``."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            entries.append((words[0], words[1]))
    return entries


def parse_one_line_sources(text: str) -> list[str]:
    """Archive URIs from a one-line ``sources.list``: ``deb [opts] URI SUITE COMPONENT...``."""
    return [uri.rstrip("/") for uri, suite in _one_line_entries(text) if _is_main_archive(uri, [suite])]


def _source_files(apt_dir: Path) -> list[Path]:
    """apt's source lists, in its reading order."""
    files = [apt_dir / "sources.list"] if (apt_dir / "sources.list").is_file() else []
    part = apt_dir / "sources.list.d"
    if part.is_dir():
        files += [f for f in sorted(part.iterdir()) if f.suffix in (".sources", ".list")]
    return files


def host_mirrors(apt_dir: Path | None = None) -> list[str]:
    """Main-archive mirror URIs configured on this host, in apt's reading order."""
    found: list[str] = []
    for f in _source_files(apt_dir or APT_DIR):
        parse = parse_deb822_sources if f.suffix == ".sources" else parse_one_line_sources
        found += parse(f.read_text(errors="replace"))
    seen: list[str] = []
    for u in found:
        if u not in seen:
            seen.append(u)
    return seen


def host_suites(apt_dir: Path | None = None) -> list[str]:
    """Every suite the host's enabled ``deb`` sources name (Debian's or not), in reading order:
    what to tell a user whose host has no Debian mirror (an Ubuntu runner names noble, ...)."""
    suites: list[str] = []
    for f in _source_files(apt_dir or APT_DIR):
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            named = [s for p in deb822_paragraphs(text)
                     if p.get("enabled", "yes").strip().lower() != "no" and "deb" in p.get("types", "").split()
                     for s in p.get("suites", "").split()]
        else:
            named = [suite for _uri, suite in _one_line_entries(text)]
        suites += [s for s in named if s not in suites]
    return suites


NO_MIRROR_HINT = (f"run kharness in a Debian container (GitHub Actions: `container: debian:bookworm`) "
                  f"or set {ENV_VAR}=<URL of a Debian archive mirror>")


def no_mirror_message(apt_dir: Path | None = None) -> str:
    """Why no Debian mirror was found, naming what the host's apt sources hold instead."""
    apt_dir = apt_dir or APT_DIR
    suites = host_suites(apt_dir)
    if not suites:
        return f"no Debian mirror: the host has no apt sources in {apt_dir} (not a Debian host)"
    shown = ", ".join(suites[:4]) + (", ..." if len(suites) > 4 else "")
    return f"no Debian mirror: the host's apt sources in {apt_dir} name no Debian suite, only {shown} " \
           f"(not a Debian host)"


def debian_mirror(apt_dir: Path | None = None) -> str:
    """The mirror to download from; raises :class:`InfraError` with the fix when there is none."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env.rstrip("/")
    mirrors = host_mirrors(apt_dir)
    if not mirrors:
        raise InfraError(no_mirror_message(apt_dir), hint=NO_MIRROR_HINT)
    return mirrors[0]
