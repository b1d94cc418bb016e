"""A writer for the ``newc`` cpio format the kernel unpacks as its initramfs.

Written here rather than shelling out to ``cpio`` so that entries (a ``/dev/console`` node, fixed
modes, zero mtimes) need no root and the archive is byte-for-byte reproducible.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


@dataclass
class CpioWriter:
    _chunks: list[bytes] = field(default_factory=list)
    _ino: int = 1
    _names: set[str] = field(default_factory=set)

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self._names:
            raise ValueError(f"duplicate cpio entry {name!r}")
        self._names.add(name)
        bname = name.encode() + b"\0"
        fields_ = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(bname), 0)
        header = b"070701" + b"".join(b"%08X" % v for v in fields_)
        self._ino += 1
        self._chunks += [header, bname, _pad4(len(header) + len(bname)), data, _pad4(len(data))]

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def getvalue(self) -> bytes:
        """The archive, terminated by the ``TRAILER!!!`` entry and padded to 512 bytes."""
        w = CpioWriter(list(self._chunks), self._ino)
        w._entry("TRAILER!!!", 0)
        out = b"".join(w._chunks)
        return out + b"\0" * ((512 - len(out) % 512) % 512)


def read_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    """``(name, mode, data)`` of each entry of a newc archive (for tests and ``image ls``)."""
    out = []
    off = 0
    while off < len(data):
        if data[off:off + 6] != b"070701":
            if data[off:off + 1] == b"\0":
                off += 1
                continue
            raise ValueError(f"bad cpio magic at offset {off}")
        vals = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = vals[1], vals[6], vals[11]
        noff = off + 110
        name = data[noff:noff + namesize - 1].decode()
        doff = noff + namesize
        doff += (4 - doff % 4) % 4
        body = data[doff:doff + size]
        off = doff + size
        off += (4 - off % 4) % 4
        if name == "TRAILER!!!":
            break
        out.append((name, mode, body))
    return out
