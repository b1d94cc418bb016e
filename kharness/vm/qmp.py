"""QMP, QEMU's JSON monitor protocol, with one deadline over a whole conversation.

qemu.qmp's asyncio client speaks the protocol; its legacy synchronous wrapper (which kharness used
before) waits without a limit, so a wedged QEMU held the snapshot lock of every other worker for
ever. Here the whole conversation (connect, greeting, capabilities, the command) runs under one
``asyncio.wait_for``: a silent or broken monitor costs at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from qemu.qmp import ExecuteError, QMPClient
from qemu.qmp.error import QMPError

from kharness.errors import InfraError

# qemu.qmp logs every failed connection attempt at ERROR level; kharness reports them itself.
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class QmpTimeout(InfraError):
    """QEMU's monitor did not answer in time."""


async def _hmp(sock: Path, command: str) -> object:
    client = QMPClient("kharness")
    try:
        await client.connect(str(sock))
        return await client.execute("human-monitor-command", {"command-line": command})
    finally:
        await client.disconnect()


def _run(coro, timeout: float, late: str, refused: str, unreachable: str):
    """``coro`` run to its end within ``timeout`` seconds: past it a QmpTimeout saying ``late``
    "within N s"; a QMP error QEMU returned, an InfraError ``refused: why``; a monitor that
    cannot be talked to, an InfraError ``unreachable: why``. Each caller names what it was doing."""
    try:
        return asyncio.run(asyncio.wait_for(coro, timeout))
    except (asyncio.TimeoutError, TimeoutError):
        raise QmpTimeout(f"{late} within {timeout:g}s") from None
    except ExecuteError as e:
        raise InfraError(f"{refused}: {e.error.error.desc}") from None
    except (QMPError, OSError, EOFError) as e:
        raise InfraError(f"{unreachable}: {e}") from None


def hmp(sock: Path, command: str, timeout: float) -> str:
    """Run a human-monitor command (e.g. ``savevm``) on the QMP socket ``sock``, all of it within
    ``timeout`` seconds; its text output (HMP reports errors as text, not as QMP errors)."""
    out = _run(_hmp(sock, command), timeout, f"QEMU's monitor did not answer `{command}`",
               f"QEMU refused `{command}`", f"cannot talk to QEMU's monitor at {sock} (`{command}`)")
    return out if isinstance(out, str) else ""


# How often a migration's progress is asked for while it runs.
MIGRATE_POLL = 0.05


async def _migrate(sock: Path, fd: int) -> dict:
    client = QMPClient("kharness")
    try:
        await client.connect(str(sock))
        client.send_fd_scm(fd)
        await client.execute("getfd", {"fdname": STATE_FD})
        await client.execute("migrate", {"uri": f"fd:{STATE_FD}"})
        while True:
            info = await client.execute("query-migrate")
            if isinstance(info, dict) and info.get("status") in ("completed", "failed", "cancelled"):
                return info
            await asyncio.sleep(MIGRATE_POLL)
    finally:
        await client.disconnect()


STATE_FD = "kh-state"


def migrate(sock: Path, dest: Path, timeout: float) -> None:
    """Save the state of the VM behind ``sock`` to the file ``dest`` (a migration stream, which
    ``-incoming fd:N`` of the file restores), all of it within ``timeout`` seconds. QEMU is handed
    the file open (no shell line to quote), so that it sees a failed write itself."""
    try:
        f = open(dest, "wb")
    except OSError as e:
        raise InfraError(f"cannot save the VM state to {dest}: {e.strerror or e}") from None
    with f:
        info = _run(_migrate(sock, f.fileno()), timeout, f"saving the VM state to {dest} did not finish",
                    "QEMU refused to save the VM state", f"cannot talk to QEMU's monitor at {sock} (migrate)")
    if info.get("status") != "completed":
        raise InfraError(f"saving the VM state to {dest} {info.get('status')}: "
                         f"{info.get('error-desc', 'no reason given')}")


# How often a guest still loading is looked at (QEMU alive, the kernel not panicked), and how
# soon a monitor that is not up yet is tried again.
ALIVE_POLL = 0.25
CONNECT_RETRY = 0.01


async def _until_running(sock: Path, alive) -> None:
    while True:
        alive()
        client = QMPClient("kharness")
        try:
            await client.connect(str(sock))
            break
        except (QMPError, OSError, EOFError):   # (the socket is made as QEMU starts)
            await asyncio.sleep(CONNECT_RETRY)
    try:
        # The RESUME event says when the guest runs, the moment it does (no polling delay);
        # asked first in case it came before the listener did.
        with client.listener("RESUME") as resumed:
            info = await client.execute("query-status")
            if isinstance(info, dict) and info.get("status") == "running":
                return
            while True:
                try:
                    await asyncio.wait_for(resumed.get(), ALIVE_POLL)
                    return
                except asyncio.TimeoutError:
                    alive()
    finally:
        await client.disconnect()


def wait_running(sock: Path, timeout: float, alive) -> None:
    """Until the VM behind ``sock`` runs (an incoming migration done), within ``timeout``
    seconds; ``alive()`` is called meanwhile (it raises when QEMU died). A guest reached before
    it runs misses what it is sent: user-mode networking accepts a connection for it at once,
    and the SYN it forwards to a guest that is still loading is lost."""
    _run(_until_running(sock, alive), timeout, "the restored guest did not start running",
         "QEMU's monitor refused query-status", f"cannot talk to QEMU's monitor at {sock}")
