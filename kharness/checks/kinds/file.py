"""``file``: a file anywhere in the guest (``proc`` and ``sysfs`` are the same under /proc, /sys).

Without ``write`` the file is read: ``expect`` (the exact content, a final newline ignored)
and/or ``expect_stdout`` (a regex). With ``write`` the value is written in one ``write()``:
success is expected unless ``expect_errno`` names the error (``"EINVAL"``, ``"EACCES"``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.kinds.run import judge_output
from kharness.checks.placeholders import regex_field, substitute

NAME = "file"
ORDER = 40
KEYS = frozenset({"path", "write", "expect", "expect_stdout", "expect_errno"})


@dataclass(frozen=True, kw_only=True)
class FileCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    path: str
    write: str | None = None
    expect: str | None = None              # exact content
    expect_stdout: str | None = None       # a regex
    expect_errno: str | None = None        # the error a write must end in


CHECK = FileCheck


def parse_path(table: dict, base: dict, err, cls: type[FileCheck], prefix: str = "") -> FileCheck:
    """A check of a path kind (``cls``), whose path must start with ``prefix``."""
    fields.strings(table, err, "path", "write", "expect")
    p = table.get("path")
    if not p:
        raise err(f"'path' is required for a {cls.kind} check")
    if prefix and not p.startswith(prefix):
        raise err(f"a {cls.kind} path must start with {prefix} (got {p!r}); use kind = \"file\" otherwise")
    if not p.startswith("/"):
        raise err(f"'path' must be absolute (got {p!r})")
    en = fields.expect_errno(table, err, needs_write=True)
    return cls(name=table.get("name") or f"{cls.kind} {p}", **base, path=p, write=table.get("write"),
               expect=table.get("expect"), expect_errno=en,
               expect_stdout=regex_field(err, "expect_stdout", table.get("expect_stdout")))


def parse(table: dict, base: dict, err) -> FileCheck:
    return parse_path(table, base, err, FileCheck)


def command(c: FileCheck, values: dict[str, str], target=None) -> str:
    where = f"check {c.name!r}"
    if c.write is None:
        # kh-agent's cat: one static process in every guest (a Debian guest's cat is a dynamic
        # binary, tens of milliseconds an exec under TCG); its messages are cat's.
        return STEP_CURSOR + agent_client.cat(substitute(c.path, values, where))
    value = substitute(c.write, values, where)
    # One write() of exactly these bytes, the file opened as a shell's `>` opens it, by kh-agent:
    # its reply names the errno in every guest (busybox's echo names it, dash's says "I/O
    # error", a board's shell whatever it says).
    return STEP_CURSOR + agent_client.redirect(substitute(c.path, values, where), value.encode())


def judge(c: FileCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    if c.write is not None:
        got = _write_error(rc, stdout, stderr)
        if c.expect_errno is None and got is not None:
            return [f"write of {c.write!r} failed with {got}, expected success"]
        if c.expect_errno is not None and not fields.same_errno(got, c.expect_errno):
            return [f"write of {c.write!r} {'succeeded' if got is None else 'failed with ' + got}, "
                    f"expected {c.expect_errno}"]
        return []
    if rc != 0:
        return [f"reading {c.path} failed: {fields.errno_of(stderr) or stderr.strip() or f'exit status {rc}'}"]
    problems = []
    if c.expect is not None:
        exp = substitute(c.expect, values, f"check {c.name!r}")
        if stdout.rstrip("\n") != exp.rstrip("\n"):
            problems.append(f"read {stdout.strip()[:200]!r}, expected {exp.strip()[:200]!r}")
    return problems + judge_output(c.name, values, ("stdout", stdout, c.expect_stdout))


def _write_error(rc: int, stdout: str, stderr: str) -> str | None:
    """The errno the write (or the open before it) ended in, None for success, from kh-agent's
    reply line (``ret=N errno=NAME|0``, or ``open_errno=NAME``)."""
    try:
        reply = agent_client.last_reply(stdout)
    except ValueError:   # not kh-agent's line (it did not run): what the shell said
        reply = {}
    if "open_errno" in reply:
        return reply["open_errno"]
    if rc == 0 and "errno" in reply:
        return None if reply["errno"] == "0" else reply["errno"]
    return fields.errno_of(stderr) or stderr.strip()[:200] or f"exit status {rc}"


def texts(c: FileCheck):
    for f in ("path", "write", "expect", "expect_stdout"):
        if getattr(c, f) is not None:
            yield f, getattr(c, f)
