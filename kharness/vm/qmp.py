"""QMP, QEMU's JSON monitor protocol, with one deadline over a whole conversation.

qemu.qmp's asyncio client speaks the protocol; its legacy synchronous wrapper (which kharness used
before) waits without a limit, so a wedged QEMU held the snapshot lock of every other worker for
ever. Here the whole conversation (connect, greeting, capabilities, the command) runs under one
``asyncio.wait_for``: a silent or broken monitor costs at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
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


def hmp(sock: Path, command: str, timeout: float) -> str:
    """Run a human-monitor command (e.g. ``savevm``) on the QMP socket ``sock``, all of it within
    ``timeout`` seconds; its text output (HMP reports errors as text, not as QMP errors)."""
    try:
        out = asyncio.run(asyncio.wait_for(_hmp(sock, command), timeout))
    except (asyncio.TimeoutError, TimeoutError):
        raise QmpTimeout(f"QEMU's monitor did not answer `{command}` within {timeout:g}s") from None
    except ExecuteError as e:
        raise InfraError(f"QEMU refused `{command}`: {e.error.error.desc}") from None
    except (QMPError, OSError, EOFError) as e:
        raise InfraError(f"cannot talk to QEMU's monitor at {sock} (`{command}`): {e}") from None
    return out if isinstance(out, str) else ""
