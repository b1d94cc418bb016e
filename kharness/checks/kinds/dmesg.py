"""``dmesg``: the kernel log since the previous step: ``expect`` (a regex that must appear)
and/or ``forbid`` (a regex that must not)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import BaseCheck
from kharness.checks.placeholders import compile_regex, regex_field

NAME = "dmesg"
ORDER = 50
KEYS = frozenset({"expect", "forbid"})


@dataclass(frozen=True, kw_only=True)
class DmesgCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    expect: str | None = None
    forbid: str | None = None


CHECK = DmesgCheck


def parse(table: dict, base: dict, err) -> DmesgCheck:
    fields.strings(table, err, "expect")
    if table.get("expect") is None and table.get("forbid") is None:
        raise err("a dmesg check needs 'expect' or 'forbid' (regular expressions)")
    return DmesgCheck(name=table.get("name") or NAME, **base,
                      expect=regex_field(err, "expect", table.get("expect")),
                      forbid=regex_field(err, "forbid", table.get("forbid")))


def command(c: DmesgCheck, values: dict[str, str], target=None) -> str:
    # Reads (and moves) the step cursor itself: no STEP_CURSOR before it.
    return agent_client.dmesg_since(agent_client.STEP_CURSOR_NAME)


def judge(c: DmesgCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    where = f"check {c.name!r}"
    problems = []
    exp = compile_regex(c.expect, values, f"{where}: 'expect'")
    if exp is not None and not exp.search(stdout):
        problems.append(f"kernel log since the previous step does not match {exp.pattern!r}")
    forbid = compile_regex(c.forbid, values, f"{where}: 'forbid'")
    if forbid is not None:
        m = forbid.search(stdout)
        if m:
            line = stdout[stdout.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0]
            problems.append(f"kernel log shows forbidden {forbid.pattern!r}: {line.strip()[:200]!r}")
    return problems


def texts(c: DmesgCheck):
    for f in ("expect", "forbid"):
        if getattr(c, f) is not None:
            yield f, getattr(c, f)
