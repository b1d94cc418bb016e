"""The kernel console: a thread drains it into a log file and watches for a panic.

The console is read continuously (never only when someone asks) so that the guest never blocks
on a full pipe and a panic is noticed the moment it is printed. The log kept in memory and on
disk is capped: a module that floods the kernel log must not flood the host.
"""

from __future__ import annotations

import os
import re
import select
import threading
import time
from pathlib import Path

from kharness import ui

PANIC_RE = re.compile(rb"Kernel panic - not syncing|---\[ end Kernel panic")
CAP = 16 << 20          # bytes of console kept on disk
TAIL = 256 << 10        # bytes kept in memory for reports


class ConsoleLog:
    def __init__(self, read_fd: int, write_fd: int, path: Path):
        self._rfd = read_fd
        self._wfd = write_fd
        # Lines sent to the console (sysrq, initstate queries) are best effort: a wedged guest
        # that stops reading must not block the harness on a full pipe.
        os.set_blocking(write_fd, False)
        self.path = path
        self._file = open(path, "wb")
        self._written = 0
        self._dropped = 0
        self._tail = bytearray()
        self.received = 0        # bytes read in all: a mark that survives the tail's trimming
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.panic_at: float | None = None
        self._echo = ui.guest_console_stream()   # `run -v`: the console live on stderr
        self._thread = threading.Thread(target=self._pump, name="kh-console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self._rfd], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self._rfd, 65536)
            except OSError:
                return
            if not data:
                return
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        with self._lock:
            window = bytes(self._tail[-64:]) + data
            if self.panic_at is None and PANIC_RE.search(window):
                self.panic_at = time.monotonic()
            self._tail += data
            self.received += len(data)
            if len(self._tail) > TAIL:
                del self._tail[: len(self._tail) - TAIL]
            room = CAP - self._written
            if room > 0:
                self._file.write(data[:room])
                self._written += min(room, len(data))
                self._file.flush()
            self._dropped += max(0, len(data) - max(room, 0))
        if self._echo is not None:
            try:
                self._echo.write(data)
                self._echo.flush()
            except (OSError, ValueError):   # stderr closed or gone: the log still has it all
                self._echo = None

    def text(self, last: int = TAIL) -> str:
        with self._lock:
            return bytes(self._tail[-last:]).decode("utf-8", "replace")

    def since(self, mark: int) -> str:
        """What the console printed after ``mark`` (a value of ``received``), as far as the
        in-memory tail still holds it."""
        with self._lock:
            n = self.received - mark
            return bytes(self._tail[-n:] if 0 < n < len(self._tail) else self._tail if n > 0 else b"").decode(
                "utf-8", "replace")

    def send(self, line: str) -> bool:
        """Send a short line (under PIPE_BUF, so it goes whole or not at all); False if the
        guest's console input is full."""
        try:
            return os.write(self._wfd, line.encode()) > 0
        except OSError:   # BlockingIOError: the pipe is full
            return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        # Drain what is left without blocking.
        try:
            while select.select([self._rfd], [], [], 0)[0]:
                data = os.read(self._rfd, 65536)
                if not data:
                    break
                self._feed(data)
        except OSError:
            pass
        with self._lock:
            if self._dropped:
                self._file.write(f"\n[kharness: {self._dropped} more bytes of console output dropped]\n".encode())
            self._file.close()
