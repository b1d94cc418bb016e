"""Exception classes.

Two families, kept apart because they mean different things to a user and to CI:

* :class:`UsageError` - the user asked for something that cannot be done (a missing directory,
  an unknown kernel). Exit code 2.
* :class:`InfraError` - kharness or its host failed (a download, QEMU missing or crashing).
  Exit code 2.

A module that fails to build, load or pass a check is *not* an exception at the CLI level: it is
a result with ``status = "fail"`` and exit code 1 (see :mod:`kharness.result`).
"""

from __future__ import annotations


class KharnessError(Exception):
    """Base class: carries a one-line message and an optional hint on how to fix it."""

    exit_code = 2
    kind = "error"

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(KharnessError):
    """Bad input from the user: arguments, module directory, configuration."""

    kind = "usage"


class InfraError(KharnessError):
    """The infrastructure failed: network, mirror, QEMU, host tools, cache."""

    kind = "infrastructure"


class DamagedCacheEntry(InfraError):
    """A sealed cache entry no longer matches its seal (see :mod:`kharness.seal`): it was altered
    on disk. The caller discards it and makes it again."""

    def __init__(self, entry, why: str):
        super().__init__(f"the cached {entry.name} was altered on disk ({why})",
                         hint="it is made again from its verified inputs")
        self.entry = entry
        self.why = why


class ModuleFailure(Exception):
    """Raised inside the pipeline when the module under test failed; never escapes the runner."""

    def __init__(self, phase: str, message: str, guest_usable: bool = False):
        super().__init__(message)
        self.phase = phase
        self.message = message
        # True when only an expectation failed and the guest still answers: the run goes on to
        # unload the module, so a failed check does not hide an unload problem.
        self.guest_usable = guest_usable
