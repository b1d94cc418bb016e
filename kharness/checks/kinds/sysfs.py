"""``sysfs``: a file under /sys (see file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness.checks.kinds import file

NAME = "sysfs"
ORDER = 30
KEYS = file.KEYS
# Read, written and judged as any file; only where the path may lead differs.
command, judge, texts = file.command, file.judge, file.texts
PREFIX = "/sys/"


@dataclass(frozen=True, kw_only=True)
class SysfsCheck(file.FileCheck):
    kind: ClassVar[str] = NAME


CHECK = SysfsCheck


def parse(table: dict, base: dict, err) -> SysfsCheck:
    return file.parse_path(table, base, err, SysfsCheck, PREFIX)
