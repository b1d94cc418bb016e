"""``run``: a shell command in the guest (the default kind of a table with a ``run`` key).

``expect_rc`` (default 0) is its exit status; ``expect_stdout``/``expect_stderr`` are regexes
that must match its output. Placeholders in ``run`` must hold plain values (see placeholders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.placeholders import compile_regex, regex_field, substitute_shell

NAME = "run"
ORDER = 10
KEYS = frozenset({"run", "expect_rc", "expect_stdout", "expect_stderr"})


@dataclass(frozen=True, kw_only=True)
class RunCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    run: str
    expect_stdout: str | None = None
    expect_stderr: str | None = None


CHECK = RunCheck


def parse(table: dict, base: dict, err) -> RunCheck:
    fields.strings(table, err, "run")
    if not (table.get("run") or "").strip():
        raise err("'run' (a shell command) is required")
    return RunCheck(name=table.get("name") or table["run"], **base, run=table["run"],
                    expect_rc=fields.any_integer(table, err, "expect_rc", 0),
                    expect_stdout=regex_field(err, "expect_stdout", table.get("expect_stdout")),
                    expect_stderr=regex_field(err, "expect_stderr", table.get("expect_stderr")))


def command(c: RunCheck, values: dict[str, str], target=None) -> str:
    return STEP_CURSOR + substitute_shell(c.run, values, f"check {c.name!r}")


def judge(c: RunCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    problems = []
    if rc != c.expect_rc:
        problems.append(f"exit status {rc}, expected {c.expect_rc}")
    problems += judge_output(c.name, values, ("stdout", stdout, c.expect_stdout),
                             ("stderr", stderr, c.expect_stderr))
    return problems


def judge_output(name: str, values: dict[str, str], *streams) -> list[str]:
    """``streams``: (stream name, its text, the regex it must match or None)."""
    problems = []
    for field, text, raw in streams:
        rx = compile_regex(raw, values, f"check {name!r}: 'expect_{field}'")
        if rx is not None and not rx.search(text):
            problems.append(f"{field} {text.strip()[:200]!r} does not match {raw!r}")
    return problems


def texts(c: RunCheck):
    yield "run", c.run
    for f in ("expect_stdout", "expect_stderr"):
        if getattr(c, f) is not None:
            yield f, getattr(c, f)
