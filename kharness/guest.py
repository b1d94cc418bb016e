"""The Guest protocol: what the harness needs from a running kernel, whatever carries the bytes.

Drivers behind protocols, as labgrid has it: the runner and the checks speak to a ``Guest``;
``kharness.vm.machine.Guest`` (QEMU, its console and command channel) is one implementation,
``kharness.testing.fake_guest.FakeGuest`` (recorded replies) another, and
``kharness.vm.ssh.SshGuest`` (any sshd: a distro VM or a real board, driven with paramiko) a third.
docs/protocol.md specifies the wire underneath; docs/ssh.md what the SSH guest does on a remote.

What the runner uses of a guest today, and where it belongs:

=========================================  ==============================================
``run(command, timeout, stdin)``           core: every guest step (insmod, checks, rmmod)
``put_file``, ``dmesg_since``, ``health``  core; ``agent_client.AgentCalls`` gives them
                                           to any guest that has ``run``
``console_text(last)``                     core: the kernel log as the console shows it
                                           ("" for a guest without one; an SSH guest's is
                                           its ``dmesg -w`` stream)
``release``, ``boot_seconds``              core: set once the guest answers
``close()``                                core: stop the guest, release everything
``sysrq``, ``module_state``                optional :class:`ConsoleSideChannel`: a second
                                           path into a guest whose command channel hangs
``argv``, ``start``, ``wait_ready``,       optional :class:`Bootable`: how the runner brings
``wait_restored``                          a QEMU guest up (cold boot or snapshot restore)
``shutdown``, ``check_alive``, ``proc``,   QEMU-only extras, not part of any protocol
``console``, ``channel``, ``qemu_stderr``
``connect``, ``probe``, ``reachable``,     SSH-only extras (``vm/ssh.py``): the handshake,
``install_agent``, ``start_log_stream``,   the board's uname and endianness, "does sshd
``cleanup``                                still answer", kh-agent's install, the log
                                           channel, removing what kharness put there
=========================================  ==============================================

Errors: ``run`` raises :mod:`kharness.vm.errors` (``CommandTimeout`` for a command past its
deadline, ``GuestDied`` for a panic or a dead guest); a guest never answers late or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kharness.agent_client import HealthLook
    from kharness.vm.channel import CommandResult


@runtime_checkable
class Guest(Protocol):
    release: str | None          # the kernel's `uname -r`, once the guest answered
    boot_seconds: float | None   # from start to the first answer (boot or restore)

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        """A shell command; its exact stdout, stderr and status within ``timeout`` seconds.
        ``stdin``: its standard input (empty: /dev/null), which is how files reach the guest."""
        ...

    def put_file(self, path: str, data: bytes, timeout: float) -> None:
        """Write ``data`` to ``path`` in the guest (each command within ``timeout``)."""
        ...

    def dmesg_since(self, cursor: str, timeout: float) -> str:
        """The raw kernel log lines since the previous call with ``cursor``."""
        ...

    def health(self, timeout: float) -> HealthLook:
        """Taint, the kernel log since the last look, loaded modules, character devices."""
        ...

    def console_text(self, last: int = 32768) -> str:
        """The last ``last`` bytes of the kernel console."""
        ...

    def close(self) -> None:
        """Stop the guest and release what it holds; safe to call twice."""
        ...


@runtime_checkable
class ConsoleSideChannel(Protocol):
    """A path into the guest that works while its command channel does not answer."""

    def sysrq(self, keys: str, settle: float = 1.0) -> str:
        """Trigger sysrq ``keys``; the console text they printed."""
        ...

    def module_state(self, name: str, timeout: float = 5.0) -> str | None:
        """``live``, ``coming``, ``going`` or ``gone``; None if the side channel is silent too."""
        ...

    def console_mark(self) -> int:
        """A mark of how far the console has got (taken before a step)."""
        ...

    def console_since(self, mark: int) -> str:
        """What the console printed after ``mark``: a report printed during a step that then
        hung (a soft lockup, a WARN before the hang) is judged with the step."""
        ...


@runtime_checkable
class Bootable(Protocol):
    """How the runner brings a QEMU guest up."""
    argv: list[str]   # the QEMU command line (the result's reproducer)

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> str:
        """Wait for a cold boot's ready line; the kernel release."""
        ...

    def wait_restored(self, timeout: float, release: str) -> None:
        """A guest restored from a snapshot: its first answer is the handshake."""
        ...


# What Run takes to make its guest: called as factory(profile: TargetProfile, boot: BootSpec,
# workdir: Path, accel: str[, extra QEMU args]); the guest it returns is also Bootable.
GuestFactory = Callable[..., Guest]
