"""The host's C compilers: which version each is. Both the resolver (does the host build modules
for this kernel?) and the toolchain choice (which compiler builds them) ask."""

from __future__ import annotations

import re
from functools import lru_cache

from kharness import proc


@lru_cache(maxsize=None)
def cc_version(cc: str) -> str:
    """The first line of ``cc --version`` (``cc`` itself if it cannot say)."""
    try:
        return proc.run([cc, "--version"], timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, proc.ProcessTimeout):
        return cc


def cc_major(cc: str) -> int | None:
    """gcc's major version (12 for ``gcc (Debian 12.2.0-14) 12.2.0``), None if unknown."""
    m = re.search(r"\) (\d+)\.", cc_version(cc)) or re.search(r" (\d+)\.\d+\.\d+", cc_version(cc))
    return int(m.group(1)) if m else None
