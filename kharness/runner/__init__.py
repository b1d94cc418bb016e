"""One run's pipeline: build -> image -> boot -> load -> check -> unload, and its verdict.

Every way out of a run produces a :class:`Result`. Usage and infrastructure problems give
``status = "error"``; anything the module did (a build error, a failed insmod or check, a kernel
oops/WARN/panic/taint, a hang) gives ``status = "fail"``; a target or kernel the module's dkms.conf
excludes gives ``status = "skipped"`` (exit 0). The guest is torn down on every path.

The package, phase by phase (each module one phase or one concern):

=================  ===========================================================================
``options``        RunOptions, the default timeouts, the reproducer command line
``context``        the run's state; ``phase(name)`` bookkeeping, guest steps, health looks
``verdict``        pure functions: which reports block, hang/panic/channel-lost diagnosis, settle
``deps``           the kernel's own modules to load first: the chain, its files, unknown symbols
``prepare``        options and kharness.toml judged before any work; the guest planned
``build``          the module built as its own files ask (dkms.conf, its Makefile, kbuild; a cell
                   its dkms.conf excludes is ``skipped``), khgpio; what to load judged
``image``          the kernel, base initramfs, run directory and modules to deliver
``boot``           snapshot restore and module delivery, or a cold boot; the first health look
``load``           the chain, khgpio, insmod in load order with parameters (``[load] expect_errno``:
                   loads that must fail), ``[load] expect_dmesg``
``exercise``       the checks
``unload``         rmmod, kmemleak, ``[unload] expect_dmesg``
``teardown``       QEMU stopped and the run directory removed (in the background after a pass)
``workdir``        the run directory: its name, --keep's marker, stale ones reaped
``pipeline``       :class:`Run`: the phases in order, and the public API a Session drives
=================  ===========================================================================

What other packages import comes from here; the modules may import each other.
"""

from __future__ import annotations

# kh-agent's commands and reply parsers live in agent_client (docs/protocol.md); these stay
# importable from here for existing callers.
from kharness.agent_client import HEALTH_CMD, HEALTH_SEP, LOAD_MARK, SESSION_CURSOR
from kharness.result.model import Result
from kharness.runner.boot import RESTORED_CMD, host_load, restore_limit
from kharness.runner.load import insmod_args
from kharness.runner.options import DEFAULT_BOOT_TIMEOUT, DEFAULT_TIMEOUT, RunOptions
from kharness.runner.pipeline import Run
from kharness.runner.teardown import wait as wait_for_teardown
from kharness.runner.verdict import Skipped
from kharness.runner.workdir import KEEP_MARKER, RUN_DIR_PREFIX

_insmod_args = insmod_args   # the name tests/unit/test_modconfig.py imports

__all__ = ["DEFAULT_BOOT_TIMEOUT", "DEFAULT_TIMEOUT", "HEALTH_CMD", "HEALTH_SEP", "KEEP_MARKER", "LOAD_MARK",
           "RESTORED_CMD", "RUN_DIR_PREFIX", "SESSION_CURSOR", "Run", "RunOptions", "Skipped", "host_load",
           "insmod_args", "restore_limit", "run", "wait_for_teardown"]


def run(opts: RunOptions) -> Result:
    """Run the pipeline; the Result. After a pass QEMU may still be dying in the background
    (``wait_for_teardown()`` joins it; the interpreter waits for it before exiting anyway)."""
    return Run(opts).execute()
