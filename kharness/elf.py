"""Read a kernel module's ``.modinfo`` section (32 or 64 bit, either endianness), and the order
its ``depends=`` asks modules to be loaded in.

The section is found through the ELF section headers with :mod:`struct`: every run reads the
modinfo of its (cached) build, and pyelftools costs ~30 ms of imports (it imports pdb, DWARF and
EH-ABI parsers) where this needs two tables.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterable, Mapping

_SHT_NOBITS = 8


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """``key -> [values]`` from the NUL-separated ``key=value`` strings of ``.modinfo``."""
    out: dict[str, list[str]] = {}
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise ValueError(f"{path.name} is not an ELF file: Magic number does not match")
        bits64, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
        try:
            hdr = f.read(48 if bits64 else 36)
            if bits64:
                (shoff,) = struct.unpack_from(order + "Q", hdr, 24)
                shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", hdr, 42)
                sh_fmt = order + "IIQQQQ"          # name, type, flags, addr, offset, size
            else:
                (shoff,) = struct.unpack_from(order + "I", hdr, 16)
                shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", hdr, 30)
                sh_fmt = order + "IIIIII"

            def section(i: int) -> tuple[int, ...]:
                f.seek(shoff + i * shentsize)
                return struct.unpack(sh_fmt, f.read(struct.calcsize(sh_fmt)))

            if shoff == 0:
                return out
            if shnum == 0 or shstrndx == 0xFFFF:   # extended numbering: the real values are in section 0
                f.seek(shoff)
                first = f.read(shentsize)
                shnum = shnum or struct.unpack_from(sh_fmt, first)[5]
                if shstrndx == 0xFFFF:
                    (shstrndx,) = struct.unpack_from(order + "I", first, 40 if bits64 else 24)
            *_, stroff, strsize = section(shstrndx)
            f.seek(stroff)
            names = f.read(strsize)
            for i in range(shnum):
                name, kind, _, _, offset, size = section(i)
                if names[name:names.find(b"\0", name)] != b".modinfo":
                    continue
                if kind == _SHT_NOBITS:
                    return out
                f.seek(offset)
                for raw in f.read(size).split(b"\0"):
                    if b"=" in raw:
                        k, v = raw.decode("utf-8", "replace").split("=", 1)
                        out.setdefault(k, []).append(v)
                return out
        except struct.error as e:
            raise ValueError(f"{path.name} is not an ELF file: truncated ({e})") from e
    return out


def depends(modinfo: Mapping[str, list[str]]) -> list[str]:
    """The modules a module needs loaded first: its ``depends=`` (comma-separated, often empty)."""
    return [d for d in ",".join(modinfo.get("depends", [""])).split(",") if d]


def load_order(names: Iterable[str], deps: Mapping[str, Iterable[str]]) -> list[str]:
    """``names`` in an order to insmod them: each after those of ``names`` it depends on, else in
    the order given. Dependencies outside ``names`` (built in, or already loaded) are not theirs to
    order; a dependency cycle (which modprobe would refuse) ends at the module seen twice."""
    names = list(names)
    known = set(names)
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for d in deps.get(n, ()):
            if d in known:
                visit(d)
        order.append(n)

    for n in names:
        visit(n)
    return order
