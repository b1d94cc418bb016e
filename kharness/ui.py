"""Terminal output: one rich console on stderr for progress, so stdout stays for results.

Progress is shown only when stderr is a terminal (or ``KHARNESS_PROGRESS=1``); in CI logs and under
pytest, steps are printed as plain one-line messages instead of redrawn bars.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING, BinaryIO, Iterator

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

console = Console(stderr=True, highlight=False)
_quiet = False
_verbose = False


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = value


def set_verbose(value: bool) -> None:
    """``--verbose``: an internal error prints its traceback (otherwise only in the result JSON)."""
    global _verbose
    _verbose = _verbose or value


def verbose() -> bool:
    return _verbose


_guest_console: BinaryIO | None = None


def stream_guest_console(value: bool) -> None:
    """``run -v``: every guest's kernel console is copied to stderr as it arrives."""
    global _guest_console
    _guest_console = sys.stderr.buffer if value else None


def guest_console_stream() -> BinaryIO | None:
    """Where a guest's console is copied as it arrives (None: nowhere, only to its log)."""
    return _guest_console


def _live() -> bool:
    return os.environ.get("KHARNESS_PROGRESS") == "1" or console.is_terminal


def info(message: str) -> None:
    if not _quiet:
        console.print(message)


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """A spinner while a long step runs, then a line saying how long it took."""
    start = time.monotonic()
    if _quiet:
        yield
        return
    if _live():
        with console.status(f"{label}…"):
            yield
    else:
        yield
    console.print(f"[dim]{label}: {time.monotonic() - start:.1f}s[/dim]")


class ByteProgress:
    """A download bar. ``advance(n)`` as bytes arrive."""

    def __init__(self, label: str, total: int | None):
        self._progress: Progress | None = None
        if _quiet or not _live():
            if not _quiet:
                size = f" ({total / 1e6:.1f} MB)" if total else ""
                console.print(f"[dim]downloading {label}{size}[/dim]")
            return
        # Here, not at the top: only a live terminal draws bars, and rich.progress would cost
        # every run ~10 ms of imports.
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator:
    """A bar counting items (matrix cells); yields ``advance(n)``. Lines printed meanwhile with
    :func:`info` scroll above it."""
    if _quiet or not _live():
        if not _quiet:
            console.print(f"[dim]{label}[/dim]")
        yield lambda n: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                 TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console, transient=True)
    with p:
        task = p.add_task(label, total=total)
        yield lambda n: p.advance(task, n)
