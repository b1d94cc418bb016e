"""Unit tests for kharness.cells: one Cell and one comma-list splitter for the matrix and the
pytest plugin (there were two of each)."""

from __future__ import annotations

import pytest

from kharness import cells as shared
from kharness.cells import Cell, split
from kharness.matrix import plan as matrix_plan
from kharness.pytest_plugin import cells as plugin_cells
from kharness.targets import all_targets


def test_matrix_and_plugin_share_one_cell_and_one_splitter():
    assert matrix_plan.Cell is plugin_cells.Cell is shared.Cell
    assert plugin_cells.split is shared.split


@pytest.mark.parametrize("given, want", [
    ("x86_64, arm64", ["x86_64", "arm64"]),
    (["x86_64,arm64", "ppc64", " arm64 "], ["x86_64", "arm64", "ppc64"]),
    (None, []), ("", []), ([], []), (",,", []),
])
def test_split(given, want):
    assert split(given) == want


def test_cell_ids():
    assert Cell("x86_64", "6.1").id == "x86_64-6.1"
    assert Cell("arm64", None).id == "arm64-default"


def test_a_target_or_series_given_twice_is_one_cell():
    cells = matrix_plan.plan(all_targets(), "x86_64,x86_64", "6.1, 6.1")
    assert cells == [Cell("x86_64", "6.1")]


def test_plugin_cells_product_and_filters():
    got = plugin_cells.cells(["x86_64", "arm64"], [], only_targets=["arm64"])
    assert got == [Cell("arm64", None)]
