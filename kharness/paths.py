"""Where things live: the cache, and the data shipped with kharness (target profiles, templates)."""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """A data directory shipped with kharness: ``images`` or ``module_templates``.

    In a wheel they live in ``kharness/_data``; in a source checkout (editable install) they are
    the top-level directories of the repository.
    """
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kharness data directory {name!r} not found next to {_PKG}")


def cache_dir() -> Path:
    """``$KHARNESS_CACHE``, else ``$XDG_CACHE_HOME/kharness``, else ``~/.cache/kharness``."""
    env = os.environ.get("KHARNESS_CACHE")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "kharness"
    base.mkdir(parents=True, exist_ok=True)
    return base
