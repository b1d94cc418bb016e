"""What a matrix or a test suite runs on: one :class:`Cell` per target x kernel, chosen from
comma-separated lists (``--targets``/``--kernels``, ``--kh-target``/``--kh-kernel``).

Each cell becomes one run, whose guest :mod:`kharness.plan` plans."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    target: str
    kernel: str | None      # a series, release or alias; None: the target's default series

    @property
    def id(self) -> str:
        return f"{self.target}-{self.kernel or 'default'}"


def split(values: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"x86_64, arm64"`` or ``["x86_64,arm64", "ppc64"]`` -> ``["x86_64", "arm64", "ppc64"]``
    (blanks dropped, order kept, no repeats: a name given twice is one cell, not two runs that
    write the same report)."""
    out: list[str] = []
    for v in [values] if isinstance(values, str) else values or []:
        for part in v.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out
