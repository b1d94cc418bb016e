"""A C struct's named fields as the target's compiler lays them out, and payloads packed into it
or read out of it by field name.

The layouts come from :mod:`kharness.hw.cprobe` (offsets, sizes, signedness measured by the
cross compiler), not from packing rules of kharness's own. Only the fields a check names are
known; the bytes of every other field are zero in a packed payload and ignored in an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a field is, as __builtin_classify_type and the probe tell it apart.
INT, POINTER, ARRAY, OTHER = "int", "pointer", "array", "other"


@dataclass(frozen=True)
class CField:
    name: str           # "text", or "hdr.len" for a member of a nested struct
    offset: int
    size: int
    kind: str           # INT (integers, enums, bool), POINTER, ARRAY, OTHER (struct, union, float...)
    signed: bool = False
    elem_size: int = 0  # ARRAY: the size of one integer element (0: its elements are not integers)
    elem_signed: bool = False
    char: bool = False  # ARRAY of plain char: a string
    what: str = ""      # OTHER: "struct", "union", "floating-point"... for messages

    @property
    def count(self) -> int:
        return self.size // self.elem_size if self.elem_size else 0

    def describe(self) -> str:
        if self.kind == ARRAY:
            elem = "char" if self.char else (f"{self.elem_size}-byte integer" if self.elem_size else "non-integer")
            return f"{self.name} ({elem} array of {self.size} bytes)"
        if self.kind == INT:
            return f"{self.name} ({'signed' if self.signed else 'unsigned'} {self.size}-byte integer)"
        return f"{self.name} ({self.kind if self.kind != OTHER else self.what})"


@dataclass(frozen=True)
class CStruct:
    name: str                        # "struct kh_msg" (or a typedef name)
    size: int
    fields: tuple[CField, ...]       # the fields asked about, in the order asked

    def field(self, name: str) -> CField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _int_range(size: int, signed: bool) -> tuple[int, int]:
    bits = 8 * size
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _check_int(where: str, value, size: int, signed: bool) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where} needs an integer, got {value!r}")
    lo, hi = _int_range(size, signed)
    if not lo <= value <= hi:
        raise ValueError(f"{where}: {value} does not fit (it takes {lo} to {hi})")
    return value


def field_bytes(s: CStruct, f: CField, value, endian: str) -> bytes:
    """``value`` as the bytes of ``f`` (shorter for a string or a short list: the rest is zero);
    ValueError naming the field when it does not suit it."""
    where = f"{s.name} field {f.describe()}"
    if f.kind == INT:
        return _check_int(where, value, f.size, f.signed).to_bytes(f.size, endian, signed=f.signed)
    if f.kind == POINTER:
        return _check_int(where, value, f.size, False).to_bytes(f.size, endian)
    if f.kind == ARRAY and f.elem_size:
        if isinstance(value, str):
            if f.elem_size != 1:
                raise ValueError(f"{where} takes a list of integers, not a string")
            data = value.encode()
            if len(data) >= f.size:
                raise ValueError(f"{where}: {value!r} ({len(data)} bytes) does not fit with its terminating NUL")
            return data
        if isinstance(value, (list, tuple)):
            if len(value) > f.count:
                raise ValueError(f"{where}: {len(value)} elements given, it has {f.count}")
            return b"".join(_check_int(f"{where} element {i}", v, f.elem_size, f.elem_signed)
                            .to_bytes(f.elem_size, endian, signed=f.elem_signed) for i, v in enumerate(value))
        raise ValueError(f"{where} needs a string or a list of integers, got {value!r}")
    kind = f.what if f.kind == OTHER else "an array of non-integers"
    raise ValueError(f"{where} is {kind}: kharness packs integers, pointers and integer or char "
                     f"arrays; name the members of a nested struct (\"{f.name}.member\")")


def pack(s: CStruct, values, endian: str) -> bytes:
    """``sizeof(struct)`` bytes: each ``(name, value)`` of ``values`` at its field, the rest zero."""
    buf = bytearray(s.size)
    for name, value in (values.items() if isinstance(values, dict) else values):
        f = s.field(name)
        data = field_bytes(s, f, value, endian)
        buf[f.offset:f.offset + len(data)] = data
    return bytes(buf)


def read(f: CField, data: bytes, endian: str, *, text: bool | None = None):
    """The value of ``f`` in ``data``: an int, a string (a char array, or any byte array when
    ``text``; up to its first NUL) or a list of ints (other integer arrays)."""
    if len(data) < f.offset + f.size:
        raise ValueError(f"{len(data)} bytes are too few for field {f.name} (at {f.offset}, {f.size} bytes)")
    raw = data[f.offset:f.offset + f.size]
    if f.kind in (INT, POINTER):
        return int.from_bytes(raw, endian, signed=f.kind == INT and f.signed)
    if f.kind == ARRAY and f.elem_size:
        if (f.char if text is None else text) and f.elem_size == 1:
            return raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        n = f.elem_size
        return [int.from_bytes(raw[i:i + n], endian, signed=f.elem_signed) for i in range(0, len(raw), n)]
    return raw.hex()


def matches(f: CField, want, data: bytes, endian: str) -> tuple[bool, object]:
    """Whether field ``f`` of ``data`` is ``want`` (``"*"``: anything; a list: the first
    ``len(want)`` elements), and the value found."""
    have = read(f, data, endian, text=isinstance(want, str) and want != "*")
    if want == "*":
        return True, have
    if isinstance(want, (list, tuple)) and isinstance(have, list):
        return list(want) == have[:len(want)], have
    return want == have, have
