"""Which line of kharness.toml defined a check (or a ``[load]``/``[unload]`` expectation), so CI can
point at it. tomllib keeps no line numbers: the lines are found by scanning the text for the
table headers, and trusted only when the scan agrees with tomllib on how many ``[[check]]`` tables
there are (a header inside a multi-line string would otherwise shift every check after it).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY_RE = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


class TomlLines:
    """The line numbers (1-based) of one kharness.toml's tables and keys."""

    def __init__(self, text: str) -> None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            data = {}
        raw = data.get("check", [])
        self.check_names: list[str | None] = [c.get("name") if isinstance(c, dict) else None
                                              for c in (raw if isinstance(raw, list) else [])]
        self.check_lines: list[int] = []
        self.keys: dict[tuple[str, str], int] = {}     # (table, key) -> line; "" is the top level
        table = ""
        for n, line in enumerate(text.splitlines(), 1):
            m = _HEADER_RE.match(line)
            if m:
                table = m.group(2).strip().strip("\"'")
                if m.group(1) == "[[" and table == "check":
                    self.check_lines.append(n)
                continue
            k = _KEY_RE.match(line)
            if k:
                self.keys.setdefault((table, k.group(1)), n)
        if len(self.check_lines) != len(self.check_names):
            self.check_lines = []   # the scan and tomllib disagree: no line is better than a wrong one

    @classmethod
    def of(cls, path: Path) -> TomlLines | None:
        try:
            return cls(path.read_text(errors="replace"))
        except OSError:
            return None

    def check(self, index: int, name: str) -> int | None:
        """The line of the check that ran ``index``-th (0-based) under ``name``. A run's checks are
        the ``[[check]]`` tables in order, then one per companion program (the ``programs`` key)."""
        if index < len(self.check_lines) and self.check_names[index] in (None, name):
            return self.check_lines[index]
        for i, n in enumerate(self.check_names):   # order disagrees (a Session's checks): by name
            if n == name and i < len(self.check_lines):
                return self.check_lines[i]
        if index >= len(self.check_names):
            return self.keys.get(("", "programs"))
        return None

    def key(self, table: str, key: str) -> int | None:
        return self.keys.get((table, key))
