"""Judging a [[check]] table's values, shared by the kinds, and the errno names busybox reports."""

from __future__ import annotations

import errno as errno_module
import os
from typing import Callable

from kharness.errors import UsageError

Err = Callable[[str], UsageError]     # message -> the error naming file, check and field

# strerror text -> errno name, from this (Linux) host's C library: what busybox prints.
_ERRNO_BY_MESSAGE = {os.strerror(n): name for n, name in errno_module.errorcode.items()}
# busybox insmod's own words for some errors (modutils' moderror()), not strerror's.
_ERRNO_BY_MESSAGE.update({
    "invalid module format": "ENOEXEC",
    "unknown symbol in module, or unknown parameter": "ENOENT",
    "module has wrong symbol version": "ESRCH",
    "kernel does not support requested operation": "ENOSYS",
})


def same_errno(a: str | None, b: str | None) -> bool:
    """Two errno names for one number (EOPNOTSUPP is ENOTSUP, EWOULDBLOCK is EAGAIN on Linux)."""
    if a is None or b is None:
        return a == b
    return getattr(errno_module, a, a) == getattr(errno_module, b, b)


def errno_of(stderr: str) -> str | None:
    """The errno name behind busybox's message (``sh: write error: Invalid argument``)."""
    for line in stderr.strip().splitlines()[::-1]:
        msg = line.rsplit(": ", 1)[-1].strip()
        if msg in _ERRNO_BY_MESSAGE:
            return _ERRNO_BY_MESSAGE[msg]
    return None


def strings(table: dict, err: Err, *keys: str) -> None:
    for key in keys:
        if key in table and not isinstance(table[key], str):
            raise err(f"'{key}' must be a string")


def integer(err: Err, field: str, v, lo: int, hi: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise err(f"'{field}' must be an integer from {lo} to {hi} (got {v!r})")
    return v


def any_integer(table: dict, err: Err, field: str, default: int) -> int:
    v = table.get(field, default)
    if not isinstance(v, int) or isinstance(v, bool):
        raise err(f"'{field}' must be an integer")
    return v


def errno_name(err: Err, field: str, v) -> str | None:
    """A step's or an open's expected errno (``None``: none expected)."""
    if v is None:
        return None
    if not (isinstance(v, str) and v.startswith("E") and hasattr(errno_module, v)):
        raise err(f"'{field}' must be an errno name such as \"EINVAL\" (got {v!r})")
    return v


def expect_errno(table: dict, err: Err, *, needs_write: bool) -> str | None:
    """The check-level ``expect_errno``: the failure a write (or an ioctl) must end in."""
    en = table.get("expect_errno")
    if en is None:
        return None
    if needs_write and "write" not in table:
        raise err("'expect_errno' applies to a write: add 'write'")
    if not (isinstance(en, str) and hasattr(errno_module, en)):
        raise err(f"'expect_errno' must be an errno name such as \"EINVAL\" (got {en!r})")
    return en
