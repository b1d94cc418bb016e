"""``ioctl``: one ioctl call on ``device``, made by the guest agent.

``request`` is a number, ``_IO/_IOR/_IOW/_IOWR(type, nr, size)`` of numbers (size may be
``payload``: encoded by kharness for the target, powerpc's layout included), or any other C
constant expression (``"KH_SET"``, ``"_IOWR('k', 3, struct kh_msg)"``, ``"_IOW(100, 0, char
*)"``) which the target's cross compiler evaluates with the module's ``header``/``headers``
(paths relative to the module directory; ``include_dirs`` for what they include).

The argument is either the integer ``arg`` itself (by value: ``ioctl(fd, REQ, 5)``), or a
pointer to a payload: ``payload_struct = "struct kh_msg"`` with ``payload``/``expect_out`` as
tables by field name (``{ flag = 1, text = "kharness" }``; laid out by the compiler for the
target, unnamed fields zero, ``"*"`` for any value; the buffer is sizeof the struct), or the
older field-by-field lists (``[["u32", 5], ["char[16]", "hi"]]``) packed by kharness's own rules.
``expect_ret`` (default 0, or -1 with ``expect_errno`` alone), ``expect_errno``.

What needs the compiler is judged by :func:`validate` for the run's target before anything is
built; :mod:`kharness.hw.cprobe` keeps its answers, so commands and judging reuse them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kharness import agent_client
from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.placeholders import substitute
from kharness.errors import UsageError
from kharness.hw import cprobe, cstruct
from kharness.hw.ioctl import is_numeric_form, layout_for, parse_request
from kharness.hw.payload import layout, pack, parse_description, unpack

NAME = "ioctl"
ORDER = 60
KEYS = frozenset({"device", "request", "payload", "expect_ret", "expect_errno", "expect_out", "header",
                  "headers", "include_dirs", "payload_struct", "arg"})
PATH_KEYS = ("header", "headers", "include_dirs")


@dataclass(frozen=True, kw_only=True)
class IoctlCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    device: str
    request: object                        # int, "_IOWR('k', 1, payload)" or C ("KH_SET")
    payload: tuple = ()                    # ((type, value), ...); with payload_struct ((field, value), ...)
    expect_ret: int = 0
    expect_errno: str | None = None
    expect_out: tuple = ()                 # as payload, values may be "*"
    headers: tuple[str, ...] = ()          # absolute paths
    include_dirs: tuple[str, ...] = ()
    payload_struct: str | None = None      # "struct kh_msg": payload/expect_out name its fields
    arg: int | None = None                 # passed by value instead of a pointer


CHECK = IoctlCheck


def make(device: str, request, payload=(), out=(), *, headers=(), include_dirs=(), payload_struct=None,
         arg=None) -> IoctlCheck:
    """The call ``Session.ioctl`` makes, judged as a table would be: ``payload``/``out`` as in a
    table (out values are ignored, only the fields count; with ``payload_struct`` ``out`` may
    be a list of field names); ``headers``/``include_dirs`` absolute paths. A mistake is a
    UsageError."""
    table: dict = {"device": device, "request": request}
    if payload_struct is not None:
        table["payload_struct"] = payload_struct
        out = dict.fromkeys(x if isinstance(x, str) else x[0] for x in out) if not isinstance(out, dict) else out
        out = dict.fromkeys(out, "*")
        payload = dict(payload)
    else:
        out = [[t[0], "*"] if isinstance(t, (list, tuple)) and len(t) == 2 else t for t in out]
        payload = list(payload)
    if payload:
        table["payload"] = payload
    if out:
        table["expect_out"] = out
    if arg is not None:
        table["arg"] = arg
    if headers:
        table["headers"] = [str(h) for h in headers]
    if include_dirs:
        table["include_dirs"] = [str(d) for d in include_dirs]
    return parse(table, {}, lambda msg: UsageError(f"ioctl {device}: {msg}"))


def _desc_size(desc, bits: int) -> int | None:
    return layout([t for t, _ in desc], endian="little", bits=bits).size if desc else None


def _listed(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(v or ())


def _fields(c: dict, key: str, err, struct: str) -> tuple:
    """A payload/expect_out table by field name: ((field, value), ...)."""
    out = []
    for name, v in c[key].items():
        try:
            cprobe.check_field_name(name)
        except ValueError as e:
            raise err(f"'{key}': {e}") from None
        ok = (isinstance(v, (int, str)) and not isinstance(v, bool)) or (
            isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v))
        if not ok:
            raise err(f"'{key}': field {name} of {struct} needs an integer, a string or a list of integers "
                      f"(got {v!r})")
        out.append((name, tuple(v) if isinstance(v, list) else v))
    return tuple(out)


def parse(table: dict, base: dict, err) -> IoctlCheck:
    c = table
    dev = c.get("device")
    if not isinstance(dev, str) or not dev.startswith("/"):
        raise err("'device' (an absolute path such as /dev/mydev) is required for an ioctl check")
    if "header" in c and "headers" in c:
        raise err("give 'header' or 'headers', not both")
    headers = _listed(c.get("header", c.get("headers")))
    include_dirs = _listed(c.get("include_dirs"))
    if not all(Path(h).is_file() for h in headers):
        raise err("'header'/'headers' must name C header files, not directories")
    if not all(Path(d).is_dir() for d in include_dirs):
        raise err("'include_dirs' must name directories")
    struct = c.get("payload_struct")
    if struct is not None:
        try:
            struct = cprobe.check_struct_name(struct)
        except ValueError as e:
            raise err(f"'payload_struct': {e}") from None
    out: dict = {}
    for key in ("payload", "expect_out"):
        if key not in c:
            continue
        if isinstance(c[key], dict):
            if struct is None:
                raise err(f"a '{key}' table names fields of a struct: add payload_struct = \"struct NAME\"")
            out[key] = _fields(c, key, err, struct)
            continue
        if struct is not None:
            raise err(f"with payload_struct, give '{key}' as a table by field name "
                      f"({key} = {{ flag = 1, text = \"hi\" }})")
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
    arg = c.get("arg")
    if arg is not None:
        if not isinstance(arg, int) or isinstance(arg, bool):
            raise err("'arg' must be an integer (passed by value: ioctl(fd, REQUEST, arg))")
        clash = [k for k in ("payload", "expect_out", "payload_struct") if k in c]
        if clash:
            raise err(f"'arg' passes an integer by value: it cannot go with {', '.join(clash)}")
    req = c.get("request")
    if req is None or isinstance(req, bool) or not isinstance(req, (int, str)):
        raise err("'request' is required: a number, a macro of the header (\"KH_SET\") or "
                  "_IOWR('k', 1, payload)")
    if is_numeric_form(req):
        size = _desc_size(out.get("payload") or out.get("expect_out"), 64) if struct is None else 0
        try:
            # Judged here as on x86; validate() judges it again for the target of the run.
            parse_request(req, layout_for("x86"), size)
        except ValueError as e:
            raise err(str(e)) from None
    else:
        try:
            cprobe.check_expression(req)
        except ValueError as e:
            raise err(f"'request': {e}") from None
    # A failing ioctl returns -1: expect_errno alone says so.
    ret = fields.any_integer(c, err, "expect_ret", -1 if "expect_errno" in c else 0)
    en = fields.expect_errno(c, err, needs_write=False)
    return IoctlCheck(name=c.get("name") or f"ioctl {dev}", **base, device=dev, request=req,
                      expect_ret=ret, expect_errno=en, headers=headers, include_dirs=include_dirs,
                      payload_struct=struct, arg=arg, **out)


# --- what the target decides ----------------------------------------------------------------------

def _probe(c: IoctlCheck, target) -> cprobe.Answers | None:
    """The compiler's answers this check needs on ``target`` (None: it needs none)."""
    expr = () if is_numeric_form(c.request) else (c.request,)
    structs = {}
    if c.payload_struct is not None:
        structs[c.payload_struct] = [n for n, _ in c.payload] + [n for n, _ in c.expect_out]
    if not expr and not structs:
        return None
    return cprobe.probe(target, headers=c.headers, include_dirs=c.include_dirs, exprs=expr, structs=structs)


def _request(c: IoctlCheck, target, answers: cprobe.Answers | None) -> int:
    if not is_numeric_form(c.request):
        return answers.values[c.request]
    if c.payload_struct is not None:
        size = answers.structs[c.payload_struct].size
    else:
        size = _desc_size(c.payload or c.expect_out, target.bits)
    return parse_request(c.request, layout_for(target.kernel_arch), size)


def validate(c: IoctlCheck, target) -> None:
    """The request, the struct and the payload for ``target``: the compiler's answers (a macro
    or struct the header does not define...), powerpc's 13 size bits, the fields' ranges."""
    try:
        answers = _probe(c, target)
    except ValueError as e:
        raise ValueError(f"on {target.name}: {e}") from None
    try:
        req = _request(c, target, answers)
        if not -(1 << (target.bits - 1)) <= req < (1 << target.bits):
            raise ValueError(f"request {req} does not fit in the {target.bits}-bit request of an ioctl")
        if c.arg is not None and not -(1 << (target.bits - 1)) <= c.arg < (1 << target.bits):
            raise ValueError(f"'arg' {c.arg} does not fit in the {target.bits}-bit argument of an ioctl")
        if c.payload_struct is not None:
            s = answers.structs[c.payload_struct]
            cstruct.pack(s, c.payload, target.endian)
            for name, want in c.expect_out:
                if want != "*":
                    cstruct.field_bytes(s, s.field(name), want, target.endian)
        elif c.payload:
            pack(list(c.payload), endian=target.endian, bits=target.bits)
    except ValueError as e:
        raise ValueError(f"'request'/'payload' on {target.name}: {e}") from None


def command(c: IoctlCheck, values: dict[str, str], target) -> str:
    answers = _probe(c, target)
    req = _request(c, target, answers) & ((1 << target.bits) - 1)   # (int)0x80000000 is that request too
    dev = substitute(c.device, values, f"check {c.name!r}")
    if c.arg is not None:
        return STEP_CURSOR + agent_client.ioctl(dev, req, arg=c.arg)
    if c.payload_struct is not None:
        s = answers.structs[c.payload_struct]
        return STEP_CURSOR + agent_client.ioctl(dev, req, cstruct.pack(s, c.payload, target.endian), s.size)
    endian, bits = target.endian, target.bits
    data = pack(list(c.payload), endian=endian, bits=bits) if c.payload else b""
    out_len = _desc_size(c.expect_out, bits) or 0
    return STEP_CURSOR + agent_client.ioctl(dev, req, data, out_len)


def out_values(c: IoctlCheck, out: bytes, target) -> list | dict:
    """The fields of ``expect_out`` read from the argument's bytes after the call: a list in
    the older form, {field: value} with ``payload_struct``."""
    if c.payload_struct is not None:
        s = _probe(c, target).structs[c.payload_struct]
        return {n: cstruct.read(s.field(n), out, target.endian) for n, _ in c.expect_out}
    return unpack([t for t, _ in c.expect_out], out, endian=target.endian, bits=target.bits)


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
        out = reply.get("out", b"")
        if c.payload_struct is not None:
            s = _probe(c, target).structs[c.payload_struct]
            if len(out) < s.size:
                return [f"the argument came back with {len(out)} bytes; sizeof({s.name}) is {s.size}"]
            for name, want in c.expect_out:
                ok, have = cstruct.matches(s.field(name), want, out, target.endian)
                if not ok:
                    problems.append(f"field {name} is {have!r}, expected {want!r}")
            return problems
        types = [t for t, _ in c.expect_out]
        got = unpack(types, out, endian=target.endian, bits=target.bits)
        for i, ((typ, want), have) in enumerate(zip(c.expect_out, got)):
            if want != "*" and want != have:
                problems.append(f"field {i} ({typ}) is {have!r}, expected {want!r}")
    return problems


def texts(c: IoctlCheck):
    yield "device", c.device
