"""Inspect and prune the cache (``kharness cache ls`` / ``clean``)."""

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


def _entries():
    base = cache_dir()
    for kind_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for entry in sorted(kind_dir.iterdir()):
            if entry.suffix in (".lock", ".part") or entry.name.startswith("."):
                continue
            yield kind_dir.name, entry


def cache_entries() -> list[tuple[str, str, int]]:
    return [(kind, e.name, _size(e)) for kind, e in _entries()]


def clean(kinds: list[str] | None, older_than_days: float | None) -> tuple[int, int]:
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    n = size = 0
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
