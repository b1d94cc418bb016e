"""A run's directory in the system's temporary directory: its guest's console log, initrd and
sockets. It names its owner's pid, so one left by a kharness that died is found and removed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RUN_DIR_PREFIX = "kharness-run-"
KEEP_MARKER = "KEPT"


def make_run_dir() -> Path:
    reap_stale_run_dirs()
    return Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-"))


def reap_stale_run_dirs() -> None:
    """Remove run directories whose kharness process died without cleaning up (SIGKILL, power
    loss). A directory names its owner's pid; one kept with --keep is left alone."""
    for d in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*-*"):
        try:
            pid = int(d.name[len(RUN_DIR_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if (d / KEEP_MARKER).exists() or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            continue
