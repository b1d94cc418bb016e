"""Seals on cache entries: what an entry held when it was published, checked whenever it is used.

An entry (an unpacked kernel, headers, an image, a busybox, a kernel build...) is assembled in a
staging directory and published by an atomic rename (:mod:`kharness.lock`). Its seal, the
``.complete`` file written last, lists every file with its size, modification time and SHA256.
A use compares sizes and times (a stat per file: cheap enough for every run); ``kharness cache
verify`` and the tests compare the hashes too. An entry whose seal is missing, from an older
kharness, or contradicted by the files is rebuilt from its verified inputs, never used.

Very large trees (kernel sources and build trees, build environments) seal the files that matter
to a run (the kernel image, .config, Module.symvers...) rather than every one of their 10^5 files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

MARKER = ".complete"
VERSION = 1
LEGACY = "sealed by an older kharness or with a damaged seal"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk(entry: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(entry):
        dirs.sort()
        for name in sorted(files):
            p = Path(root, name)
            if p.parent != entry or name != MARKER:
                yield p
        for name in dirs:
            p = Path(root, name)
            if p.is_symlink():
                yield p


def seal(entry: Path, meta: dict | None = None, only: Iterable[str] | None = None) -> None:
    """Write ``entry``'s seal: every file (or the relative paths in ``only``) and ``meta``."""
    paths = [entry / r for r in only] if only is not None else list(_walk(entry))
    files: dict[str, dict] = {}
    for p in paths:
        rel = p.relative_to(entry).as_posix()
        if p.is_symlink():
            files[rel] = {"link": os.readlink(p)}
        elif p.is_file():
            st = p.stat()
            files[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(p)}
        else:
            raise FileNotFoundError(f"cannot seal {p}: not a file")
    (entry / MARKER).write_text(json.dumps({"version": VERSION, "meta": meta or {}, "files": files},
                                           separators=(",", ":")))


def read_meta(entry: Path) -> dict:
    return json.loads((entry / MARKER).read_text()).get("meta", {})


def problem(entry: Path, *, deep: bool = False, shallow: bool = False) -> str | None:
    """Why ``entry`` must not be used (``None``: it is sound). ``deep`` also compares hashes;
    ``shallow`` only reads the seal (for a tree of many files whose files are checked when used)."""
    marker = entry / MARKER
    if not entry.exists():
        return "missing"
    try:
        data = json.loads(marker.read_text())
        files = data["files"]
        if data.get("version") != VERSION or not isinstance(files, dict):
            raise ValueError
    except FileNotFoundError:
        return "incomplete (no seal: its build was interrupted)"
    except (ValueError, KeyError, TypeError, OSError):
        return LEGACY
    if shallow:
        return None
    for rel, want in files.items():
        p = entry / rel
        try:
            if "link" in want:
                if os.readlink(p) != want["link"]:
                    return f"{rel} points elsewhere"
                continue
            st = p.lstat()
        except OSError:
            return f"{rel} is missing"
        if st.st_size != want["size"]:
            return f"{rel} has {st.st_size} bytes, {want['size']} when it was sealed"
        if st.st_mtime_ns != want["mtime_ns"]:
            return f"{rel} was modified after it was sealed"
        if deep and file_sha256(p) != want["sha256"]:
            return f"{rel} does not match its SHA256"
    return None


def discard(entry: Path) -> None:
    """Take the seal off ``entry``: the next use makes it again."""
    (entry / MARKER).unlink(missing_ok=True)


def usable(entry: Path, what: str, adopt=None) -> bool:
    """True if ``entry`` is sound; otherwise say why (when it exists) so it is rebuilt.

    ``adopt``: for entries that take minutes to make (kernel builds, sources, build
    environments), a function that seals an entry completed by an older kharness (its plain
    ``.complete`` marker) instead of making it again."""
    why = problem(entry)
    if why is None:
        return True
    if why == LEGACY and adopt is not None and (entry / MARKER).stat().st_size == 0:
        adopt()
        return problem(entry) is None
    if why != "missing" and not why.startswith("incomplete"):
        from kharness import ui
        ui.info(f"[yellow]cached {what} {entry.name}: {why}; making it again[/yellow]")
    return False
