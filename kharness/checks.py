"""The check language of ``kharness.toml``: parse a ``[[check]]`` table, run it, judge it.

Kinds (``kind`` defaults to ``run`` when the table has a ``run`` key):

* ``run``   - a shell command; ``expect_rc``, ``expect_stdout``/``expect_stderr`` (regexes).
* ``proc``, ``sysfs``, ``file`` - a path (``/proc/...``, ``/sys/...``, anywhere). Without ``write``
  the file is read: ``expect`` (the exact content, a final newline ignored) and/or
  ``expect_stdout`` (a regex). With ``write`` the value is written in one ``write()``:
  success is expected unless ``expect_errno`` names the error (``"EINVAL"``, ``"EACCES"``...).
* ``dmesg`` - the kernel log since the previous step: ``expect`` (a regex that must appear) and/or
  ``forbid`` (a regex that must not).
* ``ioctl`` - ``device``, ``request`` (a number or ``_IO/_IOR/_IOW/_IOWR(type, nr, size)``, where
  size may be ``payload``), ``payload`` and ``expect_out`` described field by field
  (``[["u32", 5], ["char[16]", "hi"]]``, ``"*"`` for any value), ``expect_ret`` (default 0),
  ``expect_errno``. Request numbers and structs are encoded for the target (powerpc's ioctl
  layout, big-endian ppc64, 32-bit rpi2) and the guest agent makes the call.

Every kind takes ``repeat = N`` (run the step N times, each must pass) and ``timeout``.
Strings may use ``{module}`` and ``{param.NAME}`` (the module's parameters as loaded); other
braces are left alone, so shell and awk code need no escaping.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import UsageError
from kharness.hw.ioctl import layout_for as ioctl_layout_for
from kharness.hw.ioctl import parse_request
from kharness.hw.payload import layout, pack, parse_description, unpack

KINDS = ("run", "proc", "sysfs", "file", "dmesg", "ioctl")
_KEYS = {
    "run": {"run", "expect_rc", "expect_stdout", "expect_stderr"},
    "proc": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "sysfs": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "file": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "dmesg": {"expect", "forbid"},
    "ioctl": {"device", "request", "payload", "expect_ret", "expect_errno", "expect_out"},
}
_COMMON = {"name", "kind", "repeat", "timeout"}
_PREFIX = {"proc": "/proc/", "sysfs": "/sys/"}
_TOKEN_RE = re.compile(r"\{(module|param\.[A-Za-z_][A-Za-z0-9_]*)\}")
# Mark the start of every step in the kernel log so a dmesg check sees what the steps before it did.
STEP_CURSOR = "kh-dmesg-since step >/dev/null 2>&1; "

# strerror text -> errno name, from this (Linux) host's C library: what busybox prints.
_ERRNO_BY_MESSAGE = {os.strerror(n): name for n, name in _errno.errorcode.items()}


@dataclass(frozen=True)
class Check:
    name: str
    kind: str = "run"
    run: str | None = None
    path: str | None = None
    write: str | None = None
    expect: str | None = None
    expect_rc: int = 0
    expect_stdout: str | None = None
    expect_stderr: str | None = None
    expect_errno: str | None = None
    forbid: str | None = None
    repeat: int = 1
    timeout: float | None = None
    device: str | None = None
    request: object = None                 # int or "_IOWR('k', 1, payload)"
    payload: tuple = ()                    # ((type, value), ...)
    expect_ret: int = 0
    expect_out: tuple = ()                 # ((type, value or "*"), ...)


def _regex(err, field: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise err(f"'{field}' must be a string (a regular expression)")
    try:
        re.compile(value)
    except re.error as e:
        raise err(f"'{field}' is not a valid regular expression: {e}") from None
    return value


def parse_check(path: Path, index: int, c) -> Check:
    where = f"check #{index}" + (f" ({c.get('name')})" if isinstance(c, dict) and c.get("name") else "")

    def err(msg: str) -> UsageError:
        return UsageError(f"{path}: {where}: {msg}")

    if not isinstance(c, dict):
        raise err("must be a table")
    kind = c.get("kind", "run" if "run" in c else None)
    if kind is None:
        raise err("give 'run' (a shell command) or a 'kind' (" + ", ".join(KINDS) + ")")
    if kind not in KINDS:
        raise err(f"unknown check kind {kind!r}; known: {', '.join(KINDS)}")
    bad = set(c) - _COMMON - _KEYS[kind]
    if bad:
        raise err(f"unknown key(s) {sorted(bad)} for a {kind} check; it takes "
                  f"{', '.join(sorted(_KEYS[kind] | _COMMON - {'kind'}))}")
    for key in ("run", "path", "write", "expect", "name"):
        if key in c and not isinstance(c[key], str):
            raise err(f"'{key}' must be a string")
    if kind == "run" and not (c.get("run") or "").strip():
        raise err("'run' (a shell command) is required")
    if kind in _PREFIX or kind == "file":
        p = c.get("path")
        if not p:
            raise err(f"'path' is required for a {kind} check")
        if kind in _PREFIX and not p.startswith(_PREFIX[kind]):
            raise err(f"a {kind} path must start with {_PREFIX[kind]} (got {p!r}); use kind = \"file\" otherwise")
        if not p.startswith("/"):
            raise err(f"'path' must be absolute (got {p!r})")
    if kind == "dmesg" and c.get("expect") is None and c.get("forbid") is None:
        raise err("a dmesg check needs 'expect' or 'forbid' (regular expressions)")
    rc = c.get("expect_rc", 0)
    if not isinstance(rc, int) or isinstance(rc, bool):
        raise err("'expect_rc' must be an integer")
    repeat = c.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10000:
        raise err("'repeat' must be an integer from 1 to 10000")
    t = c.get("timeout")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0):
        raise err("'timeout' must be a positive number of seconds")
    ioctl: dict = _parse_ioctl(c, err) if kind == "ioctl" else {}
    en = c.get("expect_errno")
    if en is not None:
        if "write" not in c and kind != "ioctl":
            raise err("'expect_errno' applies to a write: add 'write'")
        if not (isinstance(en, str) and hasattr(_errno, en)):
            raise err(f"'expect_errno' must be an errno name such as \"EINVAL\" (got {en!r})")
    expect = c.get("expect")
    if kind == "dmesg":
        _regex(err, "expect", expect)
    default_name = c.get("run") or f"{kind} {c.get('path') or ''}".strip()
    return Check(name=str(c.get("name") or default_name), kind=kind, run=c.get("run"), path=c.get("path"),
                 write=c.get("write"), expect=expect, expect_rc=rc,
                 expect_stdout=_regex(err, "expect_stdout", c.get("expect_stdout")),
                 expect_stderr=_regex(err, "expect_stderr", c.get("expect_stderr")),
                 expect_errno=en, forbid=_regex(err, "forbid", c.get("forbid")), repeat=repeat, timeout=t,
                 **ioctl)


def _parse_ioctl(c: dict, err) -> dict:
    dev = c.get("device")
    if not isinstance(dev, str) or not dev.startswith("/"):
        raise err("'device' (an absolute path such as /dev/mydev) is required for an ioctl check")
    out: dict = {"device": dev}
    for key in ("payload", "expect_out"):
        if key in c:
            try:
                desc = parse_description(c[key], key)
                layout([t for t, _ in desc], endian="little", bits=64)
                if key == "payload":
                    pack(desc, endian="little", bits=64)
            except ValueError as e:
                raise err(str(e)) from None
            out[key] = tuple(desc)
    req = c.get("request")
    if req is None:
        raise err("'request' is required: a number or _IOWR('k', 1, payload)")
    size = _desc_size(out.get("payload") or out.get("expect_out"), 64)
    try:
        parse_request(req, ioctl_layout_for("x86"), size)
    except ValueError as e:
        raise err(str(e)) from None
    out["request"] = req
    rc = c.get("expect_ret", 0)
    if not isinstance(rc, int) or isinstance(rc, bool):
        raise err("'expect_ret' must be an integer")
    out["expect_ret"] = rc
    return out


def _desc_size(desc, bits: int) -> int | None:
    return layout([t for t, _ in desc], endian="little", bits=bits).size if desc else None


def substitute(text: str | None, values: dict[str, str], where: str) -> str | None:
    if text is None:
        return None

    def repl(m: re.Match) -> str:
        if m.group(1) not in values:
            raise UsageError(f"{where}: {{{m.group(1)}}} is not known here",
                             hint=f"known: {', '.join('{' + k + '}' for k in sorted(values))}")
        return values[m.group(1)]

    return _TOKEN_RE.sub(repl, text)


def command_for(c: Check, values: dict[str, str], target=None) -> str:
    """The guest shell command for one repetition of ``c`` (``target``: the profile, for ioctl)."""
    where = f"check {c.name!r}"
    if c.kind == "ioctl":
        return STEP_CURSOR + _ioctl_command(c, values, target)
    if c.kind == "run":
        return STEP_CURSOR + substitute(c.run, values, where)
    if c.kind == "dmesg":
        return "kh-dmesg-since step"
    path = shlex.quote(substitute(c.path, values, where))
    if c.write is not None:
        value = substitute(c.write, values, where)
        # One write() of exactly these bytes. busybox's echo reports a failed write with its
        # strerror ("write error: Invalid argument"); its printf fails silently. echo would
        # take a value made only of -n/-e/-E as options: only those go through printf.
        if re.fullmatch(r"-[neE]+", value):
            return STEP_CURSOR + f"printf '%s' {shlex.quote(value)} > {path}"
        return STEP_CURSOR + f"echo -n {shlex.quote(value)} > {path}"
    return STEP_CURSOR + f"cat {path}"


def _ioctl_command(c: Check, values: dict[str, str], target) -> str:
    endian, bits = target.endian, target.bits
    size = _desc_size(c.payload or c.expect_out, bits)
    req = parse_request(c.request, ioctl_layout_for(target.kernel_arch), size)
    data = pack(list(c.payload), endian=endian, bits=bits).hex() if c.payload else "-"
    out_len = _desc_size(c.expect_out, bits) or 0
    dev = shlex.quote(substitute(c.device, values, f"check {c.name!r}"))
    return f"kh-agent ioctl {dev} {req:#x} {data} {out_len}"


def _judge_ioctl(c: Check, rc: int, stdout: str, stderr: str, target) -> list[str]:
    from kharness.hw.agent import parse_reply

    line = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        reply = parse_reply(line)
    except ValueError:
        return [f"no answer from the guest agent (exit {rc}): {(stderr or stdout).strip()[:200]!r}"]
    if "open_errno" in reply:
        return [f"cannot open {c.device}: {reply['open_errno']}"]
    problems = []
    got_errno = reply.get("errno", "0")
    if reply.get("ret") != c.expect_ret:
        problems.append(f"ioctl returned {reply.get('ret')} ({got_errno}), expected {c.expect_ret}")
    if c.expect_errno is not None and got_errno != c.expect_errno:
        problems.append(f"errno {got_errno}, expected {c.expect_errno}")
    if c.expect_out and not problems:
        types = [t for t, _ in c.expect_out]
        got = unpack(types, reply.get("out", b""), endian=target.endian, bits=target.bits)
        for i, ((typ, want), have) in enumerate(zip(c.expect_out, got)):
            if want != "*" and want != have:
                problems.append(f"field {i} ({typ}) is {have!r}, expected {want!r}")
    return problems


def errno_of(stderr: str) -> str | None:
    """The errno name behind busybox's message (``sh: write error: Invalid argument``)."""
    for line in stderr.strip().splitlines()[::-1]:
        msg = line.rsplit(": ", 1)[-1].strip()
        if msg in _ERRNO_BY_MESSAGE:
            return _ERRNO_BY_MESSAGE[msg]
    return None


def judge(c: Check, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    """What did not meet the check's expectations (empty: it passed)."""
    where = f"check {c.name!r}"
    problems: list[str] = []
    if c.kind == "ioctl":
        return _judge_ioctl(c, rc, stdout, stderr, target)
    if c.kind == "dmesg":
        exp = substitute(c.expect, values, where)
        if exp is not None and not re.search(exp, stdout, re.M):
            problems.append(f"kernel log since the previous step does not match {exp!r}")
        forbid = substitute(c.forbid, values, where)
        if forbid is not None:
            m = re.search(forbid, stdout, re.M)
            if m:
                line = stdout[stdout.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0]
                problems.append(f"kernel log shows forbidden {forbid!r}: {line.strip()[:200]!r}")
        return problems
    if c.kind == "run":
        if rc != c.expect_rc:
            problems.append(f"exit status {rc}, expected {c.expect_rc}")
    elif c.write is not None:
        got = None if rc == 0 else (errno_of(stderr) or f"exit status {rc}")
        if c.expect_errno is None and got is not None:
            problems.append(f"write of {c.write!r} failed with {got}, expected success")
        elif c.expect_errno is not None and got != c.expect_errno:
            problems.append(f"write of {c.write!r} {'succeeded' if got is None else 'failed with ' + got}, "
                            f"expected {c.expect_errno}")
        return problems
    elif rc != 0:
        problems.append(f"reading {c.path} failed: {errno_of(stderr) or stderr.strip() or f'exit status {rc}'}")
        return problems
    if c.kind != "run" and c.expect is not None:
        exp = substitute(c.expect, values, where)
        if stdout.rstrip("\n") != exp.rstrip("\n"):
            problems.append(f"read {stdout.strip()[:200]!r}, expected {exp.strip()[:200]!r}")
    if c.expect_stdout is not None and not re.search(substitute(c.expect_stdout, values, where), stdout, re.M):
        problems.append(f"stdout {stdout.strip()[:200]!r} does not match {c.expect_stdout!r}")
    if c.expect_stderr is not None and not re.search(substitute(c.expect_stderr, values, where), stderr, re.M):
        problems.append(f"stderr {stderr.strip()[:200]!r} does not match {c.expect_stderr!r}")
    return problems


def values_for(modules: list[str], params: dict[str, dict[str, str]]) -> dict[str, str]:
    """``{module}`` and ``{param.NAME}`` for the first module (``{param.MOD.NAME}`` is not needed
    yet: one module's parameters are what checks refer to in practice)."""
    out: dict[str, str] = {}
    if modules:
        out["module"] = modules[0]
        for k, v in params.get(modules[0], {}).items():
            out[f"param.{k}"] = v
    return out
