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
* ``chardev`` - ``device`` opened once (``mode`` r, w or rw) and driven through ``steps``, each a
  table with one action: ``write`` (text) or ``write_hex``, ``read = N`` (with ``expect`` or
  ``expect_hex``), ``seek = N``, ``open_again = true`` (a second open by the same process while
  the first is held), ``open_other = true`` (an open by another process meanwhile), ``close``,
  ``reopen``; any step may say ``expect_errno`` (it must fail so) or ``expect_ret``.
  ``mknod = "NAME"`` creates ``device`` from NAME's major in /proc/devices when devtmpfs did not;
  ``open_errno`` expects the first open itself to fail.
* ``gpio`` - a line of the kharness virtual GPIO controller (``[gpio]`` in kharness.toml):
  ``set = 0|1`` drives an input, ``pulse = N`` (``interval_ms``, default 5) gives N low-high-low
  pulses; then ``expect_irqs`` (interrupts delivered on the line during the step),
  ``expect_level`` and ``expect_direction`` ("in"/"out") are checked.

Every kind takes ``repeat = N`` (run the step N times, each must pass), ``timeout``, and
``targets = ["rpi2", "rpi3"]`` (run only there; elsewhere the check is reported as skipped).
Strings may use ``{module}``, ``{param.NAME}`` (the module's parameters as loaded), ``{major}``
(the major of the character device the module registered; ``{major.NAME}`` by its name in
/proc/devices), ``{gpio.base}`` and ``{gpio.N}`` (the global GPIO number of khgpio's line N);
other braces are left alone, so shell and awk code need no escaping. A value stands for itself
wherever it goes: in a regular expression (``expect_stdout``, ``expect_stderr``, a dmesg check's
``expect``/``forbid``, ``expect_dmesg``) it is matched literally (``1.5`` does not match ``175``);
``path``, ``write`` and ``device`` are quoted for the guest shell; in ``run`` (shell code the user
writes, where a value may sit inside quotes of any kind) a value must be made of characters no
shell treats specially (letters, digits, ``_@%+=:,./-``), else the run is refused before the build.
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

KINDS = ("run", "proc", "sysfs", "file", "dmesg", "ioctl", "chardev", "gpio")
_KEYS = {
    "run": {"run", "expect_rc", "expect_stdout", "expect_stderr"},
    "proc": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "sysfs": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "file": {"path", "write", "expect", "expect_stdout", "expect_errno"},
    "dmesg": {"expect", "forbid"},
    "ioctl": {"device", "request", "payload", "expect_ret", "expect_errno", "expect_out"},
    "chardev": {"device", "mode", "mknod", "minor", "steps", "open_errno"},
    "gpio": {"line", "set", "pulse", "interval_ms", "expect_irqs", "expect_level", "expect_direction"},
}
_STEP_ACTIONS = ("write", "write_hex", "write_fields", "read", "seek", "open_again", "open_other", "close",
                 "reopen")
_STEP_KEYS = set(_STEP_ACTIONS) | {"expect", "expect_hex", "expect_fields", "expect_errno", "expect_ret"}
_COMMON = {"name", "kind", "repeat", "timeout", "targets"}
_PREFIX = {"proc": "/proc/", "sysfs": "/sys/"}
_TOKEN_RE = re.compile(r"\{(module|param\.[A-Za-z_][A-Za-z0-9_]*|major(?:\.[\w-]+)?|gpio\.(?:base|[0-9]+))\}")
# Mark the start of every step in the kernel log so a dmesg check sees what the steps before it did.
STEP_CURSOR = "kh-agent dmesg-since step >/dev/null 2>&1; "

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
    targets: tuple[str, ...] = ()          # empty: every target
    repeat: int = 1
    timeout: float | None = None
    device: str | None = None
    request: object = None                 # int or "_IOWR('k', 1, payload)"
    payload: tuple = ()                    # ((type, value), ...)
    expect_ret: int = 0
    expect_out: tuple = ()                 # ((type, value or "*"), ...)
    mode: str = "rw"                       # chardev
    mknod: str | None = None
    minor: int = 0
    steps: tuple = ()                      # ((action, arg, expect: dict), ...)
    open_errno: str | None = None
    line: int | None = None                # gpio
    set: int | None = None
    pulse: int | None = None
    interval_ms: float = 5.0
    expect_irqs: int | None = None
    expect_level: int | None = None
    expect_direction: str | None = None


# Characters no shell (bare, "double" or 'single' quoted) gives a meaning: shlex.quote's safe set.
_SHELL_PLAIN_RE = re.compile(r"[\w@%+=:,./-]*", re.ASCII)


def _regex(err, field: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise err(f"'{field}' must be a string (a regular expression)")
    try:
        # As it will be matched: every placeholder stands for a literal value.
        re.compile(_TOKEN_RE.sub("x", value))
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
    targets = c.get("targets", [])
    if not (isinstance(targets, list) and targets and all(isinstance(x, str) for x in targets)) and "targets" in c:
        raise err("'targets' must be a non-empty list of target names such as [\"rpi2\", \"rpi3\"]")
    from kharness.targets import all_targets
    unknown = [x for x in targets if x not in all_targets()]
    if unknown:
        raise err(f"'targets' names unknown target(s) {unknown}; known: {', '.join(sorted(all_targets()))}")
    t = c.get("timeout")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0):
        raise err("'timeout' must be a positive number of seconds")
    extra: dict = {"ioctl": _parse_ioctl, "chardev": _parse_chardev, "gpio": _parse_gpio}.get(
        kind, lambda c, err: {})(c, err)
    en = c.get("expect_errno")
    if en is not None:
        if "write" not in c and kind != "ioctl":
            raise err("'expect_errno' applies to a write: add 'write'")
        if not (isinstance(en, str) and hasattr(_errno, en)):
            raise err(f"'expect_errno' must be an errno name such as \"EINVAL\" (got {en!r})")
    expect = c.get("expect")
    if kind == "dmesg":
        _regex(err, "expect", expect)
    default_name = c.get("run") or f"{kind} {c.get('path') or c.get('device') or ''}".strip()
    if kind == "gpio":
        default_name = f"gpio line {c['line']}"
    return Check(name=str(c.get("name") or default_name), kind=kind, run=c.get("run"), path=c.get("path"),
                 write=c.get("write"), expect=expect, expect_rc=rc,
                 expect_stdout=_regex(err, "expect_stdout", c.get("expect_stdout")),
                 expect_stderr=_regex(err, "expect_stderr", c.get("expect_stderr")),
                 expect_errno=en, forbid=_regex(err, "forbid", c.get("forbid")), repeat=repeat, timeout=t,
                 targets=tuple(targets),
                 **extra)


def _errno_name(err, field: str, v) -> str | None:
    if v is None:
        return None
    if not (isinstance(v, str) and v.startswith("E") and hasattr(_errno, v)):
        raise err(f"'{field}' must be an errno name such as \"EINVAL\" (got {v!r})")
    return v


def _int(err, field: str, v, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise err(f"'{field}' must be an integer from {lo} to {hi} (got {v!r})")
    return v


def _parse_chardev(c: dict, err) -> dict:
    dev = c.get("device")
    if not isinstance(dev, str) or not dev.startswith("/"):
        raise err("'device' (an absolute path such as /dev/mydev) is required for a chardev check")
    mode = c.get("mode", "rw")
    if mode not in ("r", "w", "rw"):
        raise err(f"'mode' must be \"r\", \"w\" or \"rw\" (got {mode!r})")
    mknod = c.get("mknod")
    if mknod is not None and not (isinstance(mknod, str) and re.fullmatch(r"[\w.-]+", mknod)):
        raise err(f"'mknod' must be a device name as /proc/devices lists it (got {mknod!r})")
    raw = c.get("steps", [])
    if not isinstance(raw, list):
        raise err("'steps' must be a list of tables such as { write = \"hi\" }")
    steps = []
    for i, st in enumerate(raw, 1):
        def serr(msg: str, i=i) -> UsageError:
            return err(f"step {i}: {msg}")
        if not isinstance(st, dict):
            raise serr("must be a table such as { read = 5, expect = \"hello\" }")
        bad = set(st) - _STEP_KEYS
        if bad:
            raise serr(f"unknown key(s) {sorted(bad)}; a step takes one of {', '.join(_STEP_ACTIONS)} "
                       f"and expect, expect_hex, expect_errno, expect_ret")
        actions = [a for a in _STEP_ACTIONS if a in st]
        if len(actions) != 1:
            raise serr(f"give exactly one action ({', '.join(_STEP_ACTIONS)}); got {actions or 'none'}")
        action = actions[0]
        arg = st[action]
        if action == "write" and not isinstance(arg, str):
            raise serr("'write' must be a string (use write_hex for bytes)")
        if action == "write_hex" or "expect_hex" in st:
            for key in ("write_hex", "expect_hex"):
                v = st.get(key)
                if v is not None and not (isinstance(v, str) and re.fullmatch(r"(?:[0-9a-fA-F]{2})*", v.replace(" ", ""))):
                    raise serr(f"'{key}' must be hex bytes such as \"0a1b\" (got {v!r})")
        if action in ("read", "seek"):
            _int(serr, action, arg, 0, 1 << 24)
        if action in ("open_again", "open_other", "close", "reopen") and arg is not True:
            raise serr(f"'{action}' takes true")
        if ("expect" in st or "expect_hex" in st or "expect_fields" in st) and action != "read":
            raise serr("'expect'/'expect_hex'/'expect_fields' apply to a read step")
        for key in ("write_fields", "expect_fields"):
            if key in st:
                try:
                    desc = parse_description(st[key], key)
                    pack(desc, endian="little", bits=64) if key == "write_fields" else None
                except ValueError as e:
                    raise serr(str(e)) from None
                if key == "write_fields":
                    arg = tuple(desc)
        if "expect" in st and not isinstance(st["expect"], str):
            raise serr("'expect' must be a string")
        exp = {"errno": _errno_name(serr, "expect_errno", st.get("expect_errno"))}
        if "expect_ret" in st:
            exp["ret"] = _int(serr, "expect_ret", st["expect_ret"], -1, 1 << 24)
        if "expect" in st:
            exp["data"] = st["expect"].encode()
        if "expect_hex" in st:
            exp["data"] = bytes.fromhex(st["expect_hex"].replace(" ", ""))
        if "expect_fields" in st:
            exp["fields"] = tuple(parse_description(st["expect_fields"], "expect_fields"))
        if action == "write_hex":
            arg = arg.replace(" ", "")
        steps.append((action, arg, tuple(sorted(exp.items()))))
    out = {"device": dev, "mode": mode, "mknod": mknod, "steps": tuple(steps),
           "open_errno": _errno_name(err, "open_errno", c.get("open_errno"))}
    if "minor" in c:
        out["minor"] = _int(err, "minor", c["minor"], 0, (1 << 20) - 1)
    if out["open_errno"] and steps:
        raise err("'open_errno' expects the open to fail: there can be no steps after it")
    return out


def _parse_gpio(c: dict, err) -> dict:
    from kharness.hw.gpio import MAX_LINES

    if "line" not in c:
        raise err("'line' (the khgpio line number, 0 to [gpio] lines - 1) is required for a gpio check")
    out: dict = {"line": _int(err, "line", c["line"], 0, MAX_LINES - 1)}
    if "set" in c and "pulse" in c:
        raise err("give 'set' or 'pulse', not both")
    if "set" in c:
        out["set"] = _int(err, "set", c["set"], 0, 1)
    if "pulse" in c:
        out["pulse"] = _int(err, "pulse", c["pulse"], 1, 100000)
    if "interval_ms" in c:
        v = c["interval_ms"]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 10000:
            raise err(f"'interval_ms' must be a number of milliseconds from 0 to 10000 (got {v!r})")
        if "pulse" not in c:
            raise err("'interval_ms' applies to a pulse")
        out["interval_ms"] = float(v)
    if "expect_irqs" in c:
        out["expect_irqs"] = _int(err, "expect_irqs", c["expect_irqs"], 0, 1 << 30)
    if "expect_level" in c:
        out["expect_level"] = _int(err, "expect_level", c["expect_level"], 0, 1)
    if "expect_direction" in c:
        if c["expect_direction"] not in ("in", "out"):
            raise err(f"'expect_direction' must be \"in\" or \"out\" (got {c['expect_direction']!r})")
        out["expect_direction"] = c["expect_direction"]
    return out


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
                else:
                    for t, v in desc:   # each expected value must suit its field ("*": any)
                        if v != "*":
                            pack([(t, v)], endian="little", bits=64)
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
    # A failing ioctl returns -1: expect_errno alone says so.
    rc = c.get("expect_ret", -1 if "expect_errno" in c else 0)
    if not isinstance(rc, int) or isinstance(rc, bool):
        raise err("'expect_ret' must be an integer")
    out["expect_ret"] = rc
    return out


def _desc_size(desc, bits: int) -> int | None:
    return layout([t for t, _ in desc], endian="little", bits=bits).size if desc else None


def _texts(c: Check):
    """(field, string) for every string of a check that placeholders may appear in."""
    for f in ("run", "path", "write", "expect", "expect_stdout", "expect_stderr", "forbid", "device"):
        v = getattr(c, f)
        if isinstance(v, str):
            yield f, v
    for i, (action, arg, _) in enumerate(c.steps, 1):
        if action == "write":
            yield f"step {i} write", arg


def validate_for_run(config_path: Path, checks: tuple[Check, ...], target, *, params: set[str],
                     gpio_lines: int | None, extra_texts: dict[str, str] | None = None,
                     param_values: dict[str, str] | None = None) -> None:
    """What can only be judged once the target is known, judged before anything is built or
    booted: every placeholder names something that will exist, a parameter used in a ``run``
    command holds no shell-special text, and every ioctl request and payload encodes for this
    target (powerpc has 13 size bits, 32-bit targets other sizes). ``param_values``: parameter
    name -> value (by default read from ``extra_texts``' "parameter NAME" entries)."""
    def known(tok: str) -> bool:
        if tok == "module" or tok.startswith("major"):
            return True                     # majors are read from /proc/devices after loading
        if tok.startswith("param."):
            return tok[6:] in params
        if tok == "gpio.base":
            return gpio_lines is not None
        return gpio_lines is not None and int(tok[5:]) < gpio_lines

    def hint() -> str:
        ks = ["{module}", "{major}", "{major.NAME}"] + [f"{{param.{p}}}" for p in sorted(params)]
        if gpio_lines is not None:
            ks += ["{gpio.base}", f"{{gpio.0}} to {{gpio.{gpio_lines - 1}}}"]
        return "known here: " + ", ".join(ks)

    def check_text(where: str, field: str, text: str) -> None:
        for m in _TOKEN_RE.finditer(text):
            if not known(m.group(1)):
                why = ("no such parameter is given (--param or [module.params])" if m.group(1).startswith("param.")
                       else "no [gpio] section" if gpio_lines is None
                       else f"khgpio has lines 0 to {gpio_lines - 1}")
                raise UsageError(f"{config_path}: {where}: '{field}' uses {{{m.group(1)}}}: {why}", hint=hint())
            if field == "run" and m.group(1).startswith("param."):
                # Only parameters can hold shell-special text ({module}, majors and GPIO
                # numbers are names and numbers); every value the name is given is judged.
                for v in given.get(m.group(1)[6:], ()):
                    _shell_plain(f"{config_path}: {where}", m.group(1), v)

    # NAME -> every value given for it (for any module). Unless the caller passes them, the
    # "parameter NAME" / "parameter MODULE.NAME" entries of extra_texts are the values.
    given: dict[str, list[str]] = {}
    if param_values is not None:
        for k, v in param_values.items():
            given.setdefault(k, []).append(v)
    else:
        for label, v in (extra_texts or {}).items():
            if label.startswith("parameter "):
                given.setdefault(label[len("parameter "):].rsplit(".", 1)[-1], []).append(v)
    for where, text in (extra_texts or {}).items():
        check_text(where, "value", text)
    for i, c in enumerate(checks, 1):
        if c.targets and target.name not in c.targets:
            continue
        where = f"check #{i} ({c.name})"
        for field, text in _texts(c):
            check_text(where, field, text)
        if c.kind == "ioctl":
            try:
                size = _desc_size(c.payload or c.expect_out, target.bits)
                parse_request(c.request, ioctl_layout_for(target.kernel_arch), size)
                if c.payload:
                    pack(list(c.payload), endian=target.endian, bits=target.bits)
            except ValueError as e:
                raise UsageError(f"{config_path}: {where}: 'request'/'payload' on {target.name}: {e}") from None


def _shell_plain(where: str, token: str, value: str) -> str:
    if not _SHELL_PLAIN_RE.fullmatch(value):
        raise UsageError(f"{where}: 'run' uses {{{token}}}, whose value {value!r} has characters a shell "
                         f"would interpret",
                         hint="give it letters, digits and _@%+=:,./- only, or compare it in a sysfs/file "
                              f"check (expect = \"{{{token}}}\") or with expect_stdout instead")
    return value


def substitute(text: str | None, values: dict[str, str], where: str, escape=None) -> str | None:
    """``text`` with its placeholders replaced; ``escape(token, value)`` (for instance a regex
    escape) makes what stands for each value."""
    if text is None:
        return None

    def repl(m: re.Match) -> str:
        if m.group(1) not in values:
            raise UsageError(f"{where}: {{{m.group(1)}}} is not known here",
                             hint=f"known: {', '.join('{' + k + '}' for k in sorted(values))}")
        v = values[m.group(1)]
        return escape(m.group(1), v) if escape else v

    return _TOKEN_RE.sub(repl, text)


def compile_regex(text: str | None, values: dict[str, str], where: str) -> re.Pattern | None:
    """A regex field, each placeholder's value matched literally (``1.5`` is not ``175``,
    ``hi (there`` is no syntax error). Multi-line: ``^``/``$`` match at every line."""
    rx = substitute(text, values, where, escape=lambda _token, v: re.escape(v))
    if rx is None:
        return None
    try:
        return re.compile(rx, re.M)
    except re.error as e:   # judged when the file was read; this is the last line of defence
        raise UsageError(f"{where} is not a valid regular expression once substituted ({rx!r}): {e}") from None


def command_for(c: Check, values: dict[str, str], target=None) -> str:
    """The guest shell command for one repetition of ``c`` (``target``: the profile, for ioctl)."""
    where = f"check {c.name!r}"
    if c.kind == "ioctl":
        return STEP_CURSOR + _ioctl_command(c, values, target)
    if c.kind == "chardev":
        return STEP_CURSOR + _chardev_command(c, values, target)
    if c.kind == "gpio":
        from kharness.hw import gpio
        return STEP_CURSOR + gpio.step_command(c.line, c.set, c.pulse, c.interval_ms)
    if c.kind == "run":
        return STEP_CURSOR + substitute(c.run, values, where,
                                        escape=lambda token, v: _shell_plain(where, token, v))
    if c.kind == "dmesg":
        return "kh-agent dmesg-since step"
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


_STEP_OPS = {"write": lambda a: "w:" + (a.encode().hex() or "-"), "write_hex": lambda a: "w:" + (a or "-"),
             "write_fields": lambda a: "w:" + (a or "-"),
             "read": lambda a: f"r:{a}", "seek": lambda a: f"s:{a}", "open_again": lambda a: "again",
             "open_other": lambda a: "other", "close": lambda a: "close", "reopen": lambda a: "open"}


def _chardev_command(c: Check, values: dict[str, str], target) -> str:
    where = f"check {c.name!r}"
    dev = shlex.quote(substitute(c.device, values, where))
    ops = []
    for action, arg, _ in c.steps:
        if action == "write":
            arg = substitute(arg, values, where)
        elif action == "write_fields":
            # Structs and integers in the target's byte order and word size.
            arg = pack(list(arg), endian=target.endian, bits=target.bits).hex()
        ops.append(_STEP_OPS[action](arg))
    prefix = ""
    if c.mknod:
        # devtmpfs makes the node when the module creates a device; a module that only
        # registers a major (register_chrdev) needs a mknod, as on a system without udev.
        name = c.mknod
        prefix = (f"m=$(sed -n 's/^ *\\([0-9][0-9]*\\) {re.escape(name)}$/\\1/p' /proc/devices | head -n 1); "
                  f"[ -n \"$m\" ] || {{ echo 'no device {name} in /proc/devices' >&2; exit 2; }}; "
                  f"[ -e {dev} ] || mknod {dev} c $m {c.minor} || exit 2; ")
    mode = {"r": "r", "w": "w", "rw": "rw"}[c.mode]
    return prefix + f"kh-agent session {dev} {mode} " + " ".join(shlex.quote(o) for o in ops)


def _judge_chardev(c: Check, rc: int, stdout: str, stderr: str, target) -> list[str]:
    from kharness.hw.agent import parse_reply

    replies = {}
    for line in stdout.splitlines():
        try:
            r = parse_reply(line)
        except ValueError:
            continue
        if "step" in r:
            replies[int(r["step"])] = r
    if 0 not in replies:
        return [f"no answer from the guest agent (exit {rc}): {(stderr or stdout).strip()[:200]!r}"]
    opened = replies[0]
    if c.open_errno:
        if opened["errno"] != c.open_errno:
            return [f"open of {c.device} {'succeeded' if opened['ret'] >= 0 else 'failed with ' + opened['errno']}, "
                    f"expected {c.open_errno}"]
        return []
    if opened["ret"] < 0:
        return [f"cannot open {c.device}: {opened['errno']}"]
    for i, (action, arg, exp) in enumerate(c.steps, 1):
        exp = dict(exp)
        r = replies.get(i)
        what = f"step {i} ({action}{'' if arg is True else ' ' + repr(arg)})"
        if r is None:
            return [f"{what}: no answer from the guest agent"]
        want_errno = exp.get("errno")
        if want_errno:
            if r["errno"] != want_errno:
                return [f"{what} {'succeeded' if r['ret'] >= 0 else 'failed with ' + r['errno']}, expected {want_errno}"]
            continue
        if r["ret"] < 0:
            return [f"{what} failed with {r['errno']}, expected success"]
        if "ret" in exp and r["ret"] != exp["ret"]:
            return [f"{what} returned {r['ret']}, expected {exp['ret']}"]
        if action in ("write", "write_hex", "write_fields"):
            n = {"write": lambda: len(arg.encode()), "write_hex": lambda: len(arg) // 2,
                 "write_fields": lambda: len(pack(list(arg), endian=target.endian, bits=target.bits))}[action]()
            if r["ret"] != n and "ret" not in exp:
                return [f"{what} wrote {r['ret']} of {n} bytes"]
        if "data" in exp and r.get("data", b"") != exp["data"]:
            return [f"{what} read {r.get('data', b'')!r}, expected {exp['data']!r}"]
        if "fields" in exp:
            types = [t for t, _ in exp["fields"]]
            want = layout(types, endian=target.endian, bits=target.bits).size
            data = r.get("data", b"")
            if len(data) != want:
                return [f"{what} read {len(data)} bytes, expected {want} ({', '.join(types)})"]
            got = unpack(types, data, endian=target.endian, bits=target.bits)
            for j, ((typ, v), have) in enumerate(zip(exp["fields"], got)):
                if v != "*" and v != have:
                    return [f"{what}: field {j} ({typ}) is {have!r}, expected {v!r}"]
    return []


def _judge_gpio(c: Check, rc: int, stdout: str, stderr: str) -> list[str]:
    from kharness.hw import gpio

    got = gpio.parse_step(stdout)
    if rc != 0 or got is None:
        why = errno_of(stderr) or stderr.strip()[:200] or f"exit status {rc}"
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
    if c.kind == "chardev":
        return _judge_chardev(c, rc, stdout, stderr, target)
    if c.kind == "gpio":
        return _judge_gpio(c, rc, stdout, stderr)
    if c.kind == "dmesg":
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
    for field, text in (("stdout", stdout), ("stderr", stderr)):
        raw = getattr(c, f"expect_{field}")
        rx = compile_regex(raw, values, f"{where}: 'expect_{field}'")
        if rx is not None and not rx.search(text):
            problems.append(f"{field} {text.strip()[:200]!r} does not match {raw!r}")
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
