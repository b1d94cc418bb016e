"""A matrix as CI configuration, so a team fans the cells out over its runners."""

from __future__ import annotations

import json

from kharness.cells import Cell


def github(cells: list[Cell]) -> str:
    """The value for ``strategy.matrix`` (``fromJSON`` of a job output): one include per cell."""
    return json.dumps({"include": [{"target": c.target, "kernel": c.kernel} for c in cells]})


def gitlab(cells: list[Cell], module_dir: str) -> str:
    """A job using ``parallel:matrix`` (one entry per cell)."""
    lines = ["kharness-matrix:", "  script:", "    - make install",
             f"    - .venv/bin/kharness run {module_dir} --target $KH_TARGET --kernel $KH_KERNEL --json result.json",
             "  artifacts:", "    when: always", "    paths: [result.json]", "  parallel:", "    matrix:"]
    for c in cells:
        lines.append(f"      - {{KH_TARGET: {c.target}, KH_KERNEL: \"{c.kernel}\"}}")
    return "\n".join(lines) + "\n"
