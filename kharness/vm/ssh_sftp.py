"""Writing a file on an SSH guest over SFTP (as root: SFTP writes as the login user)."""

from __future__ import annotations

import posixpath
import stat

import paramiko

from kharness.vm.errors import GuestError


def makedirs(sftp: paramiko.SFTPClient, directory: str) -> None:
    """``mkdir -p`` over SFTP: only the missing tail of the path is made."""
    missing = []
    while directory not in ("", "/"):
        try:
            if stat.S_ISDIR(sftp.stat(directory).st_mode or 0):
                break
            raise GuestError(f"{directory} exists and is not a directory")
        except FileNotFoundError:
            missing.append(directory)
            directory = posixpath.dirname(directory)
    for d in reversed(missing):
        sftp.mkdir(d)


def put(sftp: paramiko.SFTPClient, path: str, data: bytes, mode: int, timeout: float) -> None:
    """``data`` as ``path`` with ``mode``, its parents made; each SFTP request within ``timeout``
    (socket.timeout past it)."""
    sftp.get_channel().settimeout(timeout)
    makedirs(sftp, posixpath.dirname(path))
    with sftp.open(path, "wb") as f:
        f.set_pipelined(True)   # one round trip for the whole file, not one per 32 KiB
        f.write(data)
    sftp.chmod(path, mode)


def close_quietly(sftp: paramiko.SFTPClient | None) -> None:
    if sftp is not None:
        try:
            sftp.close()
        except Exception:   # noqa: BLE001 - a dead channel's close may fail any way
            pass
