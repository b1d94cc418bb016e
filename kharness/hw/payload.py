"""Binary payloads described field by field, packed the way the target's C compiler lays out
a struct: its endianness, its word size, natural alignment, tail padding.

A description is a list of ``[type, value]`` pairs, e.g. ``[["u32", 5], ["char[80]", "hello"]]``.
Types: ``u8 s8 u16 s16 u32 s32 u64 s64``, ``long``/``ulong`` (the target's word), ``char[N]``
(a string, NUL-padded), ``u8[N]`` (bytes given as a list of ints or a hex string). Values may be
omitted in an expected-output description by using ``"*"`` (any value).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

_SCALARS = {"u8": ("B", 1), "s8": ("b", 1), "u16": ("H", 2), "s16": ("h", 2), "u32": ("I", 4),
            "s32": ("i", 4), "u64": ("Q", 8), "s64": ("q", 8)}
_ARRAY_RE = re.compile(r"^(char|u8)\[(\d+)\]$")


@dataclass(frozen=True)
class Field:
    type: str
    offset: int
    size: int
    align: int
    fmt: str | None     # struct format for scalars; None for arrays


@dataclass(frozen=True)
class Layout:
    fields: tuple[Field, ...]
    size: int
    endian: str          # "little" | "big"


def _scalar(typ: str, bits: int) -> tuple[str, int]:
    if typ in ("long", "ulong"):
        return ("q" if typ == "long" else "Q", 8) if bits == 64 else ("i" if typ == "long" else "I", 4)
    if typ in _SCALARS:
        return _SCALARS[typ]
    raise ValueError(f"unknown field type {typ!r} (u8 s8 u16 s16 u32 s32 u64 s64 long ulong char[N] u8[N])")


def layout(types: list[str], *, endian: str, bits: int) -> Layout:
    fields = []
    off = 0
    max_align = 1
    for typ in types:
        m = _ARRAY_RE.match(typ)
        if m:
            size, align, fmt = int(m.group(2)), 1, None
            if size == 0:
                raise ValueError(f"{typ}: arrays need at least one element")
        else:
            fmt, size = _scalar(typ, bits)
            # Every ABI here (x86-64, AArch64, ARM EABI, ppc64 ELF) aligns scalars to their size.
            align = size
        off = (off + align - 1) // align * align
        fields.append(Field(typ, off, size, align, fmt))
        off += size
        max_align = max(max_align, align)
    total = (off + max_align - 1) // max_align * max_align
    return Layout(tuple(fields), total, endian)


def parse_description(desc, where: str) -> list[tuple[str, object]]:
    if not isinstance(desc, list) or not all(isinstance(f, list) and len(f) == 2 and isinstance(f[0], str)
                                             for f in desc):
        raise ValueError(f"{where} must be a list of [type, value] pairs, e.g. [[\"u32\", 5], [\"char[8]\", \"hi\"]]")
    return [(t, v) for t, v in desc]


def pack(desc: list[tuple[str, object]], *, endian: str, bits: int) -> bytes:
    lay = layout([t for t, _ in desc], endian=endian, bits=bits)
    buf = bytearray(lay.size)
    e = "<" if endian == "little" else ">"
    for f, (_, value) in zip(lay.fields, desc):
        if f.fmt is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{f.type} field needs an integer, got {value!r}")
            try:
                struct.pack_into(e + f.fmt, buf, f.offset, value)
            except struct.error:
                raise ValueError(f"{value} does not fit in a {f.type}") from None
        else:
            data = _array_bytes(f, value)
            buf[f.offset:f.offset + len(data)] = data
    return bytes(buf)


def _array_bytes(f: Field, value) -> bytes:
    if f.type.startswith("char"):
        if not isinstance(value, str):
            raise ValueError(f"{f.type} field needs a string, got {value!r}")
        data = value.encode()
        if len(data) >= f.size:
            raise ValueError(f"{value!r} does not fit in {f.type} with its terminating NUL")
        return data
    if isinstance(value, str):
        data = bytes.fromhex(value)
    elif isinstance(value, list) and all(isinstance(x, int) and 0 <= x < 256 for x in value):
        data = bytes(value)
    else:
        raise ValueError(f"{f.type} field needs a hex string or a list of bytes, got {value!r}")
    if len(data) > f.size:
        raise ValueError(f"{len(data)} bytes do not fit in {f.type}")
    return data


def unpack(types: list[str], data: bytes, *, endian: str, bits: int) -> list[object]:
    lay = layout(types, endian=endian, bits=bits)
    if len(data) < lay.size:
        raise ValueError(f"{len(data)} bytes are too few for a {lay.size}-byte struct")
    e = "<" if endian == "little" else ">"
    out: list[object] = []
    for f in lay.fields:
        if f.fmt is not None:
            out.append(struct.unpack_from(e + f.fmt, data, f.offset)[0])
        elif f.type.startswith("char"):
            out.append(data[f.offset:f.offset + f.size].split(b"\0", 1)[0].decode("utf-8", "replace"))
        else:
            out.append(data[f.offset:f.offset + f.size].hex())
    return out
