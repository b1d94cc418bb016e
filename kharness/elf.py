"""Read a kernel module's ``.modinfo`` section (any arch, either endianness) with pyelftools, and
the order its ``depends=`` asks modules to be loaded in."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """``key -> [values]`` from the NUL-separated ``key=value`` strings of ``.modinfo``."""
    out: dict[str, list[str]] = {}
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError as e:
            raise ValueError(f"{path.name} is not an ELF file: {e}") from e
        sec = elf.get_section_by_name(".modinfo")
        if sec is None:
            return out
        for raw in sec.data().split(b"\0"):
            if b"=" in raw:
                k, v = raw.decode("utf-8", "replace").split("=", 1)
                out.setdefault(k, []).append(v)
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
