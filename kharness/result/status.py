"""The closed sets of statuses a result holds, their exit codes, and how each is shown.

``StrEnum`` members are ``str``: they compare equal to, hash like and serialise as their value
(``RunStatus.PASS == "pass"``, ``json.dumps`` writes ``"pass"``), so the result JSON is the same
strings it always was and code that still writes ``"pass"`` keeps working.
"""

from __future__ import annotations

from enum import StrEnum

PHASES = ("build", "image", "boot", "load", "check", "unload")   # a run's phases, in order


class RunStatus(StrEnum):
    """The verdict of a run; the CLI's exit code is derived from it and nothing else."""

    PASS = "pass"     # built, loaded, checked, unloaded, no kernel complaint
    FAIL = "fail"     # the module failed: build, load, a check, unload, or the kernel complained
    ERROR = "error"   # usage or infrastructure: the module was not judged
    # The module's own files exclude this cell (a dkms.conf's BUILD_EXCLUSIVE_*): nothing was
    # built or booted, and that is no failure. Exit 0, as for a pass.
    SKIPPED = "skipped"


class PhaseStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"   # not reached
    # While the phase runs. The verdict turns a phase still running into ``error``, so a written
    # result never holds it (the JSON Schema leaves it out: see WRITTEN_PHASE_STATUSES).
    RUNNING = "running"


WRITTEN_PHASE_STATUSES: tuple[PhaseStatus, ...] = tuple(s for s in PhaseStatus if s is not PhaseStatus.RUNNING)


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"   # a check whose ``targets`` exclude this target


class ErrorKind(StrEnum):
    """``error.kind`` of a result whose status is ``error``."""

    USAGE = "usage"
    INFRASTRUCTURE = "infrastructure"


EXIT_CODES: dict[str, int] = {RunStatus.PASS: 0, RunStatus.FAIL: 1, RunStatus.ERROR: 2, RunStatus.SKIPPED: 0}

# How every status (of a run, a phase, a check or a matrix cell) is shown: the rich style on a
# terminal and the background colour of the matrix's HTML page. One table, so that "fail" is the
# same red everywhere.
STYLE: dict[str, str] = {"pass": "green", "fail": "red", "error": "magenta", "skipped": "dim"}
HTML_COLOUR: dict[str, str] = {"pass": "#2e7d32", "fail": "#c62828", "error": "#6a1b9a", "skipped": "#9e9e9e"}


def style(status: str) -> str:
    """The rich style of a status; an unknown one is shown plain."""
    return STYLE.get(status, "")
