"""Unit tests for kharness.vm.console: sending to a guest that stopped reading never blocks."""

from __future__ import annotations

import os
import threading

from kharness.vm.console import ConsoleLog


def test_send_to_a_full_console_returns(tmp_path):
    # The host holds the FIFO read-write (as machine._fifo_pair does): nothing ever drains it.
    os.mkfifo(tmp_path / "con.in", 0o600)
    wfd = os.open(tmp_path / "con.in", os.O_RDWR)
    rfd, other = os.pipe()
    con = ConsoleLog(rfd, wfd, tmp_path / "console.log")
    results: list[bool] = []
    line = "kh-initstate-123456789-some_module\n"

    def flood():   # more than a pipe holds
        for _ in range((1 << 20) // len(line)):
            results.append(con.send(line))

    t = threading.Thread(target=flood, daemon=True)
    try:
        t.start()
        t.join(60)
        assert not t.is_alive(), "send blocked on a full console"
        assert results[0] is True and results[-1] is False
    finally:
        con.close()
        for fd in (wfd, rfd, other):
            os.close(fd)
