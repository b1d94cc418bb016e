"""``gpio``: a line of the kharness virtual GPIO controller (``[gpio]`` in kharness.toml).

``set = 0|1`` drives an input, ``pulse = N`` (``interval_ms``, default 5) gives N low-high-low
pulses; then ``expect_irqs`` (interrupts delivered on the line during the step),
``expect_level`` and ``expect_direction`` ("in"/"out") are checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.hw import gpio as khgpio

NAME = "gpio"
ORDER = 80
KEYS = frozenset({"line", "set", "pulse", "interval_ms", "expect_irqs", "expect_level", "expect_direction"})


@dataclass(frozen=True, kw_only=True)
class GpioCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    line: int
    set: int | None = None
    pulse: int | None = None
    interval_ms: float = 5.0
    expect_irqs: int | None = None
    expect_level: int | None = None
    expect_direction: str | None = None


CHECK = GpioCheck


def parse(table: dict, base: dict, err) -> GpioCheck:
    c, out = table, {}
    if "line" not in c:
        raise err("'line' (the khgpio line number, 0 to [gpio] lines - 1) is required for a gpio check")
    out["line"] = fields.integer(err, "line", c["line"], 0, khgpio.MAX_LINES - 1)
    if "set" in c and "pulse" in c:
        raise err("give 'set' or 'pulse', not both")
    if "set" in c:
        out["set"] = fields.integer(err, "set", c["set"], 0, 1)
    if "pulse" in c:
        out["pulse"] = fields.integer(err, "pulse", c["pulse"], 1, 100000)
    if "interval_ms" in c:
        v = c["interval_ms"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 10000:
            raise err(f"'interval_ms' must be a number of milliseconds from 0 to 10000 (got {v!r})")
        if "pulse" not in c:
            raise err("'interval_ms' applies to a pulse")
        out["interval_ms"] = float(v)
    if "expect_irqs" in c:
        out["expect_irqs"] = fields.integer(err, "expect_irqs", c["expect_irqs"], 0, 1 << 30)
    if "expect_level" in c:
        out["expect_level"] = fields.integer(err, "expect_level", c["expect_level"], 0, 1)
    if "expect_direction" in c:
        if c["expect_direction"] not in ("in", "out"):
            raise err(f"'expect_direction' must be \"in\" or \"out\" (got {c['expect_direction']!r})")
        out["expect_direction"] = c["expect_direction"]
    return GpioCheck(name=table.get("name") or f"gpio line {out['line']}", **base, **out)


def command(c: GpioCheck, values: dict[str, str], target=None) -> str:
    return STEP_CURSOR + agent_client.khgpio_step(c.line, c.set, c.pulse, c.interval_ms)


def judge(c: GpioCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    got = agent_client.parse_khgpio_step(stdout)
    if rc != 0 or got is None:
        why = fields.errno_of(stderr) or stderr.strip()[:200] or f"exit status {rc}"
        act = f"set to {c.set}" if c.set is not None else f"pulse {c.pulse} times" if c.pulse else "read"
        return [f"could not {act} khgpio line {c.line}: {why}"]
    problems = []
    if c.expect_irqs is not None and got["irqs"] != c.expect_irqs:
        problems.append(f"{got['irqs']} interrupt(s) delivered on line {c.line}, expected {c.expect_irqs}")
    if c.expect_level is not None and got["level"] != c.expect_level:
        problems.append(f"line {c.line} is at level {got['level']}, expected {c.expect_level}")
    if c.expect_direction is not None and got["direction"] != c.expect_direction:
        problems.append(f"line {c.line} is an {got['direction']}put, expected {c.expect_direction}put")
    return problems


def texts(c: GpioCheck):
    return ()
