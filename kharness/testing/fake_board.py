"""A board over SSH as the runner sees it, without SSH: a :class:`FakeGuest` for its commands and
files, plus what only a board has (no console side channel; ``install_agent``; ``reachable``, the
question asked when it stops answering). For runner tests of ``--remote``."""

from __future__ import annotations

from kharness.testing.fake_guest import FakeGuest


class FakeBoard:
    def __init__(self, guest: FakeGuest, reachable: bool = True, release: str | None = None):
        # release: its `uname -r` (what a real board says once probed)
        self.g, self._reachable = guest, reachable
        self.release, self.boot_seconds = release, 0.1
        self.agent: bytes | None = None
        self.asked_reachable = 0

    def run(self, command, timeout, stdin=b""):
        return self.g.run(command, timeout, stdin)

    def put_file(self, path, data, timeout):
        self.g.files[path] = data

    def install_agent(self, agent, timeout):
        self.agent = agent

    def dmesg_since(self, cursor, timeout):
        return self.g.dmesg_since(cursor, timeout)

    def health(self, timeout):
        return self.g.health(timeout)

    def console_text(self, last=32768):
        return self.g.console_text(last)

    def reachable(self, timeout):
        self.asked_reachable += 1
        return self._reachable

    def close(self):
        self.g.close()
