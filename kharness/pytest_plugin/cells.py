"""Which targets x kernels a test runs on: options, markers, and their product."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    target: str
    kernel: str | None      # None: the target's default series

    @property
    def id(self) -> str:
        return f"{self.target}-{self.kernel or 'default'}"


def split(values: list[str] | None) -> list[str]:
    """``["x86_64,arm64", "ppc64"]`` -> ``["x86_64", "arm64", "ppc64"]`` (order kept, no repeats)."""
    out: list[str] = []
    for v in values or []:
        for part in v.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def cells(targets: list[str], kernels: list[str], only_targets=None, only_kernels=None) -> list[Cell]:
    ts = [t for t in targets if not only_targets or t in only_targets]
    ks = [k for k in (kernels or [None]) if not only_kernels or k in only_kernels]
    return [Cell(t, k) for t in ts for k in ks]
