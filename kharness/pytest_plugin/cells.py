"""Which targets x kernels a test runs on: the options' and markers' product."""

from __future__ import annotations

from kharness.cells import Cell, split

__all__ = ["Cell", "cells", "split"]


def cells(targets: list[str], kernels: list[str], only_targets=None, only_kernels=None) -> list[Cell]:
    ts = [t for t in targets if not only_targets or t in only_targets]
    ks = [k for k in (kernels or [None]) if not only_kernels or k in only_kernels]
    return [Cell(t, k) for t in ts for k in ks]
