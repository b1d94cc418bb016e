"""ioctl request numbers, encoded the way the *target's* kernel does it.

``asm-generic/ioctl.h`` (x86, arm, arm64): 8 bits nr, 8 bits type, 14 bits size, 2 bits
direction (none 0, write 1, read 2). powerpc (``arch/powerpc/include/uapi/asm/ioctl.h``): 13 bits
size and 3 bits direction (none 1, read 2, write 4). The same ``_IOWR('k', 1, 88)`` is a different
number on ppc64 than on x86_64, so requests are always encoded for the target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class IoctlLayout:
    size_bits: int
    dir_bits: int
    none: int
    read: int
    write: int

    def encode(self, direction: str, typ: int, nr: int, size: int) -> int:
        if not 0 <= nr < 256 or not 0 <= typ < 256:
            raise ValueError(f"ioctl type and nr must fit in 8 bits (type {typ}, nr {nr})")
        if not 0 <= size < (1 << self.size_bits):
            raise ValueError(f"ioctl size {size} does not fit in {self.size_bits} bits on this target")
        d = {"": self.none, "R": self.read, "W": self.write, "WR": self.read | self.write}[direction]
        return (d << (16 + self.size_bits)) | (size << 16) | (typ << 8) | nr


GENERIC = IoctlLayout(size_bits=14, dir_bits=2, none=0, read=2, write=1)
POWERPC = IoctlLayout(size_bits=13, dir_bits=3, none=1, read=2, write=4)


def layout_for(kernel_arch: str) -> IoctlLayout:
    """The layout for a kbuild ARCH (``x86``, ``arm64``, ``arm``, ``powerpc``)."""
    return POWERPC if kernel_arch in ("powerpc", "mips", "sparc", "alpha") else GENERIC


_MACRO_RE = re.compile(r"^\s*_IO(R|W|WR)?\s*\(\s*(.+?)\s*,\s*(\w+)\s*(?:,\s*(\w+)\s*)?\)\s*$")


def _int(token: str, what: str) -> int:
    token = token.strip()
    m = re.fullmatch(r"'(.)'", token)
    if m:
        return ord(m.group(1))
    try:
        return int(token, 0)
    except ValueError:
        raise ValueError(f"ioctl {what} {token!r} is not a number or a 'c' character") from None


def is_numeric_form(request) -> bool:
    """Whether ``request`` is one kharness encodes itself: a number, or ``_IO/_IOR/_IOW/_IOWR``
    of numbers (a ``'c'`` character for the type; the size a number, ``payload`` or left out).
    Anything else (``KH_SET``, ``_IOW('k', 1, struct kh_msg)``) is C for the target's compiler."""
    if isinstance(request, int) and not isinstance(request, bool):
        return True
    if not isinstance(request, str):
        return False
    m = _MACRO_RE.match(request)
    if not m:
        try:
            int(request, 0)
            return True
        except ValueError:
            return False
    try:
        _int(m.group(2), "type")
        _int(m.group(3), "nr")
        if m.group(4) not in (None, "payload"):
            _int(m.group(4), "size")
    except ValueError:
        return False
    return True


def parse_request(request: str | int, layout: IoctlLayout, payload_size: int | None = None) -> int:
    """A request given as a number, or as ``_IO/_IOR/_IOW/_IOWR(type, nr[, size])``; a size of
    ``payload`` (or none, for _IOR/_IOW/_IOWR) means the size of the described payload struct."""
    if isinstance(request, int) and not isinstance(request, bool):
        return request
    if not isinstance(request, str):
        raise ValueError("ioctl request must be a number or a string like \"_IOWR('k', 1, 88)\"")
    m = _MACRO_RE.match(request)
    if not m:
        try:
            return int(request, 0)
        except ValueError:
            raise ValueError(f"ioctl request {request!r} is neither a number nor _IO/_IOR/_IOW/_IOWR(...)") from None
    direction, typ, nr, size = m.group(1) or "", m.group(2), m.group(3), m.group(4)
    if direction == "":
        if size is not None:
            raise ValueError("_IO(type, nr) takes no size")
        return layout.encode("", _int(typ, "type"), _int(nr, "nr"), 0)
    if size is None or size == "payload":
        if payload_size is None:
            raise ValueError(f"{request}: give the size, or a payload to take it from")
        n = payload_size
    else:
        n = _int(size, "size")
    return layout.encode(direction, _int(typ, "type"), _int(nr, "nr"), n)
