"""The cells of a matrix: which targets x kernel series, filtered and sharded."""

from __future__ import annotations

from kharness.cells import Cell, split
from kharness.errors import UsageError
from kharness.targets import TargetProfile

__all__ = ["Cell", "plan"]


def plan(targets: dict[str, TargetProfile], want_targets: str | None, want_kernels: str | None,
         shard: str | None = None) -> list[Cell]:
    """Cells in a stable order (targets as asked, kernels oldest first); a cell exists only where
    the target has that series. ``shard`` "I/N" keeps every N-th cell from the I-th (1-based)."""
    names = split(want_targets) or list(targets)
    unknown = [t for t in names if t not in targets]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}", hint=f"known: {', '.join(targets)}")
    all_series = sorted({s for p in targets.values() for s in p.series}, key=lambda s: tuple(map(int, s.split("."))))
    kernels = split(want_kernels) or all_series
    bad = [k for k in kernels if k not in all_series]
    if bad:
        raise UsageError(f"unknown kernel series {', '.join(bad)}", hint=f"known: {', '.join(all_series)}")
    cells = [Cell(t, k) for t in names for k in kernels if k in targets[t].series]
    if not cells:
        raise UsageError("no target has any of those kernel series", hint="see `kharness targets`")
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
            if not 1 <= i <= n:
                raise ValueError
        except ValueError:
            raise UsageError(f"--shard {shard!r} is not I/N with 1 <= I <= N", hint="e.g. --shard 2/4") from None
        cells = cells[i - 1::n]
    return cells
