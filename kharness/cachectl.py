"""Inspect, verify and prune the cache (``kharness cache ls`` / ``verify`` / ``clean``)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from kharness.paths import cache_dir


def _size(p: Path) -> int:
    if p.is_file() or p.is_symlink():
        return p.lstat().st_size
    total = 0
    for root, _dirs, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


# Not cache: the running background guests' disks and state (`kharness guest down` removes them).
LIVE = ("guests",)


def _entries():
    base = cache_dir()
    for kind_dir in sorted(p for p in base.iterdir() if p.is_dir() and p.name not in LIVE):
        for entry in sorted(kind_dir.iterdir()):
            if entry.suffix in (".lock", ".part") or entry.name.startswith("."):
                continue
            yield kind_dir.name, entry


def cache_entries() -> list[tuple[str, str, int]]:
    return [(kind, e.name, _size(e)) for kind, e in _entries()]


def abandoned_staging() -> list[Path]:
    """Staging directories (``.<entry>.<random>.tmp``) that no process is filling any more: their
    producer was killed before it could publish them. One in use is under its entry's lock."""
    import fcntl

    out = []
    base = cache_dir()
    if not base.is_dir():
        return out
    for kind_dir in (p for p in base.iterdir() if p.is_dir()):
        for tmp in kind_dir.glob(".*.tmp"):
            entry = tmp.name[1:].rsplit(".", 2)[0]
            lock = kind_dir / f"{entry}.lock"
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                out.append(tmp)          # no lock file: nobody can be producing it
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                out.append(tmp)
            except BlockingIOError:
                pass                     # being produced right now
            finally:
                os.close(fd)
    return out


def _parts() -> list[Path]:
    base = cache_dir()
    if not base.is_dir():
        return []
    return sorted(part for kind_dir in base.iterdir() if kind_dir.is_dir() for part in kind_dir.glob("*.part"))


def remove_abandoned_downloads(kinds: list[str] | None = None) -> tuple[int, int]:
    """Remove ``<file>.part`` downloads nobody is writing: ``(count, bytes)``. A download in progress
    holds ``<file>.lock`` (download.fetch_verified); the lock is taken here for the removal itself,
    since the name is fixed and a new download of the same file may start at any moment."""
    import fcntl

    n = size = 0
    for part in _parts():
        if kinds and part.parent.name not in kinds:
            continue
        lock = part.with_name(part.name.removesuffix(".part") + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue                     # being downloaded right now
        try:
            if part.is_file() and not part.is_symlink():
                size += part.lstat().st_size
                part.unlink()
                n += 1
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    return n, size


def reap_abandoned_staging() -> int:
    """Remove what killed producers left; every run does this first, so nothing outlives a
    SIGKILLed kharness for longer than the next run."""
    n = 0
    for tmp in abandoned_staging():
        shutil.rmtree(tmp, ignore_errors=True)
        n += 1
    return n + remove_abandoned_downloads()[0]


def verify(kinds: list[str] | None = None, fix: bool = False) -> list[tuple[str, str, str]]:
    """Every sealed entry's files against their SHA256s, every .deb against the SHA256 it is named
    by: ``[(kind, entry, problem)]``. ``fix`` discards what does not verify (it is made again
    from verified inputs when next needed)."""
    from kharness import seal

    bad = []
    for kind, e in list(_entries()):
        if kinds and kind not in kinds:
            continue
        why = None
        if (e / seal.MARKER).exists():
            why = seal.problem(e, deep=True)
        elif kind == "debs" and e.suffix == ".deb":
            if seal.file_sha256(e) != e.name.removesuffix(".deb"):
                why = "does not match the SHA256 it is named by"
        if why is not None:
            bad.append((kind, e.name, why))
            if fix:
                if kind == "debs":
                    e.unlink(missing_ok=True)
                else:
                    seal.discard(e)
    return bad


def clean(kinds: list[str] | None, older_than_days: float | None) -> tuple[int, int]:
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    n = size = 0
    for tmp in abandoned_staging():      # always: they are never used, only left by killed runs
        if kinds and tmp.parent.name not in kinds:
            continue
        size += _size(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        n += 1
    parts, part_size = remove_abandoned_downloads(kinds)    # always, as the staging directories
    n += parts
    size += part_size
    for kind, e in list(_entries()):
        if kinds and kind not in kinds:
            continue
        if cutoff is not None and e.stat().st_atime > cutoff and e.stat().st_mtime > cutoff:
            continue
        size += _size(e)
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e, ignore_errors=True)
        else:
            e.unlink(missing_ok=True)
        n += 1
    return n, size
