"""Host subprocesses under a deadline.

``subprocess.run(timeout=...)`` kills only the direct child: ``make``'s compilers, a shell's
children, anything that inherited the output pipe, live on (and a later read of that pipe waits
for them). :func:`run` starts the command in a process group of its own and, when the deadline
passes or the caller is interrupted, kills the whole group before returning.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from kharness.errors import InfraError

# How long to wait for the pipes to close once the group is dead: only a process that left the
# group (setsid) can still hold them, and its output is not worth waiting for.
DRAIN_TIMEOUT = 5.0


class ProcessTimeout(InfraError):
    """A host command did not finish by its deadline; it and its process group were killed."""

    def __init__(self, what: str, timeout: float, stdout: str = "", stderr: str = ""):
        super().__init__(f"{what} did not finish within {timeout:g}s (it was stopped)",
                         hint="the host may be overloaded; try again, or with fewer parallel jobs")
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run(argv: Sequence[str], *, timeout: float, what: str | None = None, cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None, input: str | None = None,
        merge_stderr: bool = False) -> subprocess.CompletedProcess:
    """Run ``argv`` with its output captured as text (undecodable bytes replaced), like
    ``subprocess.run(capture_output=True, text=True)``; with ``merge_stderr`` stderr goes to
    stdout. Past ``timeout`` seconds the process group is killed and :class:`ProcessTimeout`
    (carrying the output so far) is raised. ``what`` names the command in that error."""
    p = subprocess.Popen(list(argv), cwd=cwd, env=None if env is None else dict(env),
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                         text=True, errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        out, err = _drain(p)
        raise ProcessTimeout(what or f"`{Path(argv[0]).name}`", timeout, out, err) from None
    except BaseException:
        # Ctrl-C, or a test's own timeout: in a session of its own the group does not get the
        # terminal's signal, so it must be stopped here.
        _kill_group(p)
        _drain(p)
        raise
    return subprocess.CompletedProcess(p.args, p.returncode, out or "", err or "")


def _drain(p: subprocess.Popen) -> tuple[str, str]:
    """What the killed group wrote before it died (communicate keeps what it already read)."""
    try:
        out, err = p.communicate(timeout=DRAIN_TIMEOUT)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        out, err = "", ""
        for f in (p.stdout, p.stderr, p.stdin):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        try:
            p.wait(timeout=DRAIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    return out or "", err or ""
