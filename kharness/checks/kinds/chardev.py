"""``chardev``: ``device`` opened once (``mode`` r, w or rw) and driven through ``steps``.

Each step is a table with one action: ``write`` (text), ``write_hex`` or ``write_fields``,
``read = N`` (with ``expect``, ``expect_hex`` or ``expect_fields``), ``seek = N``,
``open_again = true`` (a second open by the same process while the first is held),
``open_other = true`` (an open by another process meanwhile), ``close``, ``reopen``; any step may
say ``expect_errno`` (it must fail so) or ``expect_ret``. ``mknod = "NAME"`` creates ``device``
from NAME's major in /proc/devices when devtmpfs did not; ``open_errno`` expects the first open
itself to fail. The guest agent runs the steps as one session.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.placeholders import substitute
from kharness.hw.payload import layout, pack, parse_description, unpack

NAME = "chardev"
ORDER = 70
KEYS = frozenset({"device", "mode", "mknod", "minor", "steps", "open_errno"})
STEP_ACTIONS = ("write", "write_hex", "write_fields", "read", "seek", "open_again", "open_other", "close",
                "reopen")
STEP_KEYS = set(STEP_ACTIONS) | {"expect", "expect_hex", "expect_fields", "expect_errno", "expect_ret"}


@dataclass(frozen=True, kw_only=True)
class ChardevCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    device: str
    mode: str = "rw"
    mknod: str | None = None
    minor: int = 0
    steps: tuple = ()                      # ((action, arg, expect: ((key, value), ...)), ...)
    open_errno: str | None = None


CHECK = ChardevCheck


def parse(table: dict, base: dict, err) -> ChardevCheck:
    c = table
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
    steps = tuple(_parse_step(st, lambda msg, i=i: err(f"step {i}: {msg}")) for i, st in enumerate(raw, 1))
    out = {"device": dev, "mode": mode, "mknod": mknod, "steps": steps,
           "open_errno": fields.errno_name(err, "open_errno", c.get("open_errno"))}
    if "minor" in c:
        out["minor"] = fields.integer(err, "minor", c["minor"], 0, (1 << 20) - 1)
    if out["open_errno"] and steps:
        raise err("'open_errno' expects the open to fail: there can be no steps after it")
    return ChardevCheck(name=c.get("name") or f"chardev {dev}", **base, **out)


def _parse_step(st, serr) -> tuple:
    if not isinstance(st, dict):
        raise serr("must be a table such as { read = 5, expect = \"hello\" }")
    bad = set(st) - STEP_KEYS
    if bad:
        raise serr(f"unknown key(s) {sorted(bad)}; a step takes one of {', '.join(STEP_ACTIONS)} "
                   f"and expect, expect_hex, expect_errno, expect_ret")
    actions = [a for a in STEP_ACTIONS if a in st]
    if len(actions) != 1:
        raise serr(f"give exactly one action ({', '.join(STEP_ACTIONS)}); got {actions or 'none'}")
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
        fields.integer(serr, action, arg, 0, 1 << 24)
    if action in ("open_again", "open_other", "close", "reopen") and arg is not True:
        raise serr(f"'{action}' takes true")
    if ("expect" in st or "expect_hex" in st or "expect_fields" in st) and action != "read":
        raise serr("'expect'/'expect_hex'/'expect_fields' apply to a read step")
    for key in ("write_fields", "expect_fields"):
        if key in st:
            try:
                desc = parse_description(st[key], key)
                if key == "write_fields":
                    pack(desc, endian="little", bits=64)
                    arg = tuple(desc)
            except ValueError as e:
                raise serr(str(e)) from None
    if "expect" in st and not isinstance(st["expect"], str):
        raise serr("'expect' must be a string")
    exp = {"errno": fields.errno_name(serr, "expect_errno", st.get("expect_errno"))}
    if "expect_ret" in st:
        exp["ret"] = fields.integer(serr, "expect_ret", st["expect_ret"], -1, 1 << 24)
    if "expect" in st:
        exp["data"] = st["expect"].encode()
    if "expect_hex" in st:
        exp["data"] = bytes.fromhex(st["expect_hex"].replace(" ", ""))
    if "expect_fields" in st:
        exp["fields"] = tuple(parse_description(st["expect_fields"], "expect_fields"))
    if action == "write_hex":
        arg = arg.replace(" ", "")
    return (action, arg, tuple(sorted(exp.items())))


def _op(action: str, arg, values: dict[str, str], where: str, target) -> str:
    """One step as kh-agent's session takes it."""
    if action == "write":
        return agent_client.step_write(substitute(arg, values, where).encode())
    if action == "write_hex":
        return agent_client.step_write(bytes.fromhex(arg))
    if action == "write_fields":
        # Structs and integers in the target's byte order and word size.
        return agent_client.step_write(pack(list(arg), endian=target.endian, bits=target.bits))
    if action == "read":
        return agent_client.step_read(arg)
    if action == "seek":
        return agent_client.step_seek(arg)
    return {"open_again": agent_client.AGAIN, "open_other": agent_client.OTHER, "close": agent_client.CLOSE,
            "reopen": agent_client.REOPEN}[action]


def command(c: ChardevCheck, values: dict[str, str], target=None) -> str:
    where = f"check {c.name!r}"
    device = substitute(c.device, values, where)
    dev = shlex.quote(device)
    ops = [_op(action, arg, values, where, target) for action, arg, _ in c.steps]
    prefix = ""
    if c.mknod:
        # devtmpfs makes the node when the module creates a device; a module that only
        # registers a major (register_chrdev) needs a mknod, as on a system without udev.
        name = c.mknod
        prefix = (f"m=$(sed -n 's/^ *\\([0-9][0-9]*\\) {re.escape(name)}$/\\1/p' /proc/devices | head -n 1); "
                  f"[ -n \"$m\" ] || {{ echo 'no device {name} in /proc/devices' >&2; exit 2; }}; "
                  f"[ -e {dev} ] || mknod {dev} c $m {c.minor} || exit 2; ")
    return STEP_CURSOR + prefix + agent_client.session(device, c.mode, ops)


def judge(c: ChardevCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    replies = {}
    for line in stdout.splitlines():
        try:
            r = agent_client.parse_reply(line)
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
    for i, step in enumerate(c.steps, 1):
        problem = _judge_step(i, step, replies.get(i), target)
        if problem:
            return [problem]
    return []


def _judge_step(i: int, step: tuple, r: dict | None, target) -> str | None:
    action, arg, exp = step
    exp = dict(exp)
    what = f"step {i} ({action}{'' if arg is True else ' ' + repr(arg)})"
    if r is None:
        return f"{what}: no answer from the guest agent"
    want_errno = exp.get("errno")
    if want_errno:
        if r["errno"] != want_errno:
            return f"{what} {'succeeded' if r['ret'] >= 0 else 'failed with ' + r['errno']}, expected {want_errno}"
        return None
    if r["ret"] < 0:
        return f"{what} failed with {r['errno']}, expected success"
    if "ret" in exp and r["ret"] != exp["ret"]:
        return f"{what} returned {r['ret']}, expected {exp['ret']}"
    if action in ("write", "write_hex", "write_fields"):
        n = {"write": lambda: len(arg.encode()), "write_hex": lambda: len(arg) // 2,
             "write_fields": lambda: len(pack(list(arg), endian=target.endian, bits=target.bits))}[action]()
        if r["ret"] != n and "ret" not in exp:
            return f"{what} wrote {r['ret']} of {n} bytes"
    if "data" in exp and r.get("data", b"") != exp["data"]:
        return f"{what} read {r.get('data', b'')!r}, expected {exp['data']!r}"
    if "fields" in exp:
        types = [t for t, _ in exp["fields"]]
        want = layout(types, endian=target.endian, bits=target.bits).size
        data = r.get("data", b"")
        if len(data) != want:
            return f"{what} read {len(data)} bytes, expected {want} ({', '.join(types)})"
        got = unpack(types, data, endian=target.endian, bits=target.bits)
        for j, ((typ, v), have) in enumerate(zip(exp["fields"], got)):
            if v != "*" and v != have:
                return f"{what}: field {j} ({typ}) is {have!r}, expected {v!r}"
    return None


def texts(c: ChardevCheck):
    yield "device", c.device
    for i, (action, arg, _) in enumerate(c.steps, 1):
        if action == "write":
            yield f"step {i} write", arg
