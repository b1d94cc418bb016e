"""What can go wrong with a guest, as exceptions that carry what the console showed."""

from __future__ import annotations


class GuestError(Exception):
    def __init__(self, message: str, console_tail: str = ""):
        super().__init__(message)
        self.message = message
        self.console_tail = console_tail


class QemuStartError(GuestError):
    """QEMU refused the command line or exited before the guest came up."""


class BootTimeout(GuestError):
    """The guest did not reach its command channel in time."""


class GuestDied(GuestError):
    """The guest stopped answering because the kernel panicked or QEMU exited."""

    def __init__(self, message: str, console_tail: str = "", panic: bool = False):
        super().__init__(message, console_tail)
        self.panic = panic


class CommandTimeout(GuestError):
    """A command did not finish within its timeout (the guest may be wedged)."""
