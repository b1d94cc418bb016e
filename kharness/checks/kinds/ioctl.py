"""``ioctl``: one ioctl call on ``device``, made by the guest agent.

``request`` is a number or ``_IO/_IOR/_IOW/_IOWR(type, nr, size)``, where size may be
``payload``; ``payload`` and ``expect_out`` are described field by field
(``[["u32", 5], ["char[16]", "hi"]]``, ``"*"`` for any value); ``expect_ret`` (default 0, or -1
with ``expect_errno`` alone), ``expect_errno``. Request numbers and structs are encoded for the
target (powerpc's ioctl layout, big-endian ppc64, 32-bit rpi2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.placeholders import substitute
from kharness.errors import UsageError
from kharness.hw.ioctl import layout_for, parse_request
from kharness.hw.payload import layout, pack, parse_description, unpack

NAME = "ioctl"
ORDER = 60
KEYS = frozenset({"device", "request", "payload", "expect_ret", "expect_errno", "expect_out"})


@dataclass(frozen=True, kw_only=True)
class IoctlCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    device: str
    request: object                        # int or "_IOWR('k', 1, payload)"
    payload: tuple = ()                    # ((type, value), ...)
    expect_ret: int = 0
    expect_errno: str | None = None
    expect_out: tuple = ()                 # ((type, value or "*"), ...)


CHECK = IoctlCheck


def make(device: str, request, payload=(), out=()) -> IoctlCheck:
    """The call ``Session.ioctl`` makes: ``payload``/``out`` described as in a table (out values
    are ignored, only the types count); a bad description is a UsageError."""
    try:
        pd = parse_description(list(payload), "payload") if payload else []
        od = parse_description(list(out), "out") if out else []
    except ValueError as e:
        raise UsageError(str(e)) from None
    return IoctlCheck(name=f"ioctl {device}", device=device, request=request, payload=tuple(pd),
                      expect_out=tuple(od))


def _desc_size(desc, bits: int) -> int | None:
    return layout([t for t, _ in desc], endian="little", bits=bits).size if desc else None


def parse(table: dict, base: dict, err) -> IoctlCheck:
    c = table
    dev = c.get("device")
    if not isinstance(dev, str) or not dev.startswith("/"):
        raise err("'device' (an absolute path such as /dev/mydev) is required for an ioctl check")
    out: dict = {}
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
    try:
        # Judged here as on x86; validate() judges it again for the target of the run.
        parse_request(req, layout_for("x86"), _desc_size(out.get("payload") or out.get("expect_out"), 64))
    except ValueError as e:
        raise err(str(e)) from None
    # A failing ioctl returns -1: expect_errno alone says so.
    ret = fields.any_integer(c, err, "expect_ret", -1 if "expect_errno" in c else 0)
    en = fields.expect_errno(c, err, needs_write=False)
    return IoctlCheck(name=c.get("name") or f"ioctl {dev}", **base, device=dev, request=req,
                      expect_ret=ret, expect_errno=en, **out)


def validate(c: IoctlCheck, target) -> None:
    """The request and payload encode for ``target`` (powerpc has 13 size bits, 32-bit targets
    other sizes)."""
    try:
        size = _desc_size(c.payload or c.expect_out, target.bits)
        parse_request(c.request, layout_for(target.kernel_arch), size)
        if c.payload:
            pack(list(c.payload), endian=target.endian, bits=target.bits)
    except ValueError as e:
        raise ValueError(f"'request'/'payload' on {target.name}: {e}") from None


def command(c: IoctlCheck, values: dict[str, str], target) -> str:
    endian, bits = target.endian, target.bits
    size = _desc_size(c.payload or c.expect_out, bits)
    req = parse_request(c.request, layout_for(target.kernel_arch), size)
    data = pack(list(c.payload), endian=endian, bits=bits) if c.payload else b""
    out_len = _desc_size(c.expect_out, bits) or 0
    dev = substitute(c.device, values, f"check {c.name!r}")
    return STEP_CURSOR + agent_client.ioctl(dev, req, data, out_len)


def judge(c: IoctlCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target) -> list[str]:
    try:
        reply = agent_client.last_reply(stdout)
    except ValueError:
        reply = {}
    if not reply:
        return [f"no answer from the guest agent (exit {rc}): {(stderr or stdout).strip()[:200]!r}"]
    if "open_errno" in reply:
        return [f"cannot open {c.device}: {reply['open_errno']}"]
    problems = []
    got_errno = reply.get("errno", "0")
    if reply.get("ret") != c.expect_ret:
        problems.append(f"ioctl returned {reply.get('ret')} ({got_errno}), expected {c.expect_ret}")
    if c.expect_errno is not None and not fields.same_errno(got_errno, c.expect_errno):
        problems.append(f"errno {got_errno}, expected {c.expect_errno}")
    if c.expect_out and not problems:
        types = [t for t, _ in c.expect_out]
        got = unpack(types, reply.get("out", b""), endian=target.endian, bits=target.bits)
        for i, ((typ, want), have) in enumerate(zip(c.expect_out, got)):
            if want != "*" and want != have:
                problems.append(f"field {i} ({typ}) is {have!r}, expected {want!r}")
    return problems


def texts(c: IoctlCheck):
    yield "device", c.device
