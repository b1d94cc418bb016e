"""The end of every run: the guest stopped (QEMU killed: it holds nothing to save, and a poweroff
costs time) and the run directory removed, or kept with --keep.

After a clean run the guest is quiet, so its console tail is read first and the kill and the
removal go to a background thread while the caller writes and prints the result. That thread is
not a daemon: the interpreter waits for it before it exits, so no QEMU outlives kharness;
:func:`wait` joins it explicitly (a Session's ``close()`` always waits)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from kharness import ui
from kharness.result.model import Result, cap
from kharness.runner.workdir import KEEP_MARKER

_pending: set[threading.Thread] = set()
_lock = threading.Lock()


def teardown(guest, workdir: Path | None, keep: bool, result: Result, background: bool = False) -> None:
    """Stop ``guest`` and deal with ``workdir``; what the result says of them is in it on return.
    ``background``: the kill and the removal may finish after this returns (see :func:`wait`)."""
    if workdir is not None and keep:
        (workdir / KEEP_MARKER).touch()
        result.artifacts["run_dir"] = str(workdir)
        ui.info(f"[dim]kept the run directory {workdir}[/dim]")
    if background and guest is not None:
        result.artifacts["console_log_tail"] = cap(guest.console_text(32768))
        _start(_stop, guest, None if keep else workdir)
        return
    if guest is not None:
        # After a failure the console may still be printing (a panic, sysrq output): read its
        # tail once QEMU is gone and the console drained.
        guest.close()
        result.artifacts["console_log_tail"] = cap(guest.console_text(32768))
    if workdir is not None and not keep:
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(guest, workdir: Path | None) -> None:
    try:
        guest.close()
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def _start(fn, *args) -> None:
    def body():
        try:
            fn(*args)
        finally:
            with _lock:
                _pending.discard(threading.current_thread())

    t = threading.Thread(target=body, name="kharness-teardown")   # not a daemon: see the module doc
    with _lock:
        _pending.add(t)
    t.start()


def wait(timeout: float = 30.0) -> bool:
    """Join every background teardown (each within ``timeout``); False if one is still running."""
    with _lock:
        threads = list(_pending)
    for t in threads:
        t.join(timeout)
    return not any(t.is_alive() for t in threads)
