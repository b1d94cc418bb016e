"""``proc``: a file under /proc (see file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness.checks.kinds import file

NAME = "proc"
ORDER = 20
KEYS = file.KEYS
# Read, written and judged as any file; only where the path may lead differs.
command, judge, texts = file.command, file.judge, file.texts
PREFIX = "/proc/"


@dataclass(frozen=True, kw_only=True)
class ProcCheck(file.FileCheck):
    kind: ClassVar[str] = NAME


CHECK = ProcCheck


def parse(table: dict, base: dict, err) -> ProcCheck:
    return file.parse_path(table, base, err, ProcCheck, PREFIX)
