"""Output paths (``--json``, ``matrix --out``), checked before any work: a run that takes minutes
must not end in a traceback because its result has nowhere to go."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kharness.errors import UsageError


def _probe(directory: Path, option: str, path: Path) -> None:
    """Create and remove a file in ``directory``: the only test of writability that also holds
    for root, read-only mounts and pseudo-filesystems (os.access says yes to root everywhere)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".kharness-probe-", dir=directory)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot write in {directory} ({e.strerror or e})",
                         hint="give a path in a writable directory") from None
    os.close(fd)
    os.unlink(name)


STDOUT = "-"   # `--json -`: the result on stdout, and every other line of the run on stderr


def is_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == STDOUT


def check_output_file(path: Path, option: str) -> None:
    """``path`` can be written as a regular file (it is replaced atomically, so an existing one is
    fine), or is ``-`` (stdout)."""
    if is_stdout(path):
        return
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory", hint=f"give a file path, e.g. {path / 'result.json'}")
    if path.exists() and not path.is_file():
        # Writers replace the file by rename: /dev/null or a FIFO would be replaced, not written to.
        raise UsageError(f"{option} {path} exists and is not a regular file", hint="give a regular file path")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{option} {path}: its directory {parent} {what}",
                         hint="create the directory first, or give another path")
    _probe(parent, option, path)


def prepare_output_dir(path: Path, option: str, files: tuple[str, ...] = ()) -> None:
    """Create ``path`` (with its parents) and make sure it, and the ``files`` that will be written
    in it, can be written."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} exists and is not a directory", hint="give a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot create it ({e.strerror or e})",
                         hint="give a path in a writable directory") from None
    for name in files:
        f = path / name
        if f.exists() and not f.is_file():
            raise UsageError(f"{option} {path}: {f} exists and is not a regular file",
                             hint="remove it, or give another directory")
    _probe(path, option, path)
