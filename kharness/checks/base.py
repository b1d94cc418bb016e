"""What every check has, whatever its kind, and the mark each step leaves in the kernel log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# Marks the start of every step in the kernel log so a dmesg check sees what the steps before it
# did: a kind's command starts with it (but a dmesg check's, which reads that window).
from kharness.agent_client import STEP_CURSOR

__all__ = ["COMMON_KEYS", "STEP_CURSOR", "BaseCheck"]

# The keys every [[check]] table may have; a kind adds its own (its KEYS).
COMMON_KEYS = frozenset({"name", "kind", "repeat", "timeout", "targets"})


@dataclass(frozen=True, kw_only=True)
class BaseCheck:
    """The fields of every kind. A kind subclasses it with only its own fields and sets ``kind``
    (a class attribute: the ``kind`` value of the table, never a field to fill)."""

    kind: ClassVar[str] = ""
    name: str
    repeat: int = 1                        # run the step this many times; each must pass
    timeout: float | None = None           # seconds for one repetition (default: the run's)
    targets: tuple[str, ...] = ()          # empty: every target
    # The result records an expected exit status for every check; only a run check takes
    # it from its table (the other kinds judge the guest's reply, not an exit status).
    expect_rc: int = 0
