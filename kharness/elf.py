"""Read a kernel module's ``.modinfo`` section (any arch, either endianness) with pyelftools."""

from __future__ import annotations

from pathlib import Path

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

