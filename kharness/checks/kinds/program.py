"""``program``: one of the module's own user-space C programs, compiled for the target and run in
the guest with the module loaded.

``source`` (a path or a list of paths, relative to the module directory), ``cflags`` (a list, or
one string split as a shell would), ``include_dirs``; the module directory is always on the
include path. ``args`` (each passed as one argument; placeholders allowed), ``stdin`` (text given
to its standard input), ``expect_rc`` (default 0), ``expect_stdout`` (a regex) or
``expect_stdout_file`` (a file its standard output must equal exactly: a unified diff says where
it does not), ``expect_stderr`` (a regex). The binary is ``/kh/bin/<name>`` in the guest and
runs in ``/tmp``.

``background = true`` starts it and goes on at once: later checks run while it does (a reader
blocked on the device, which a later check unblocks). After the last check it is stopped
(SIGTERM, then SIGKILL) if still running, and judged: its output by ``expect_stdout``/
``expect_stderr``, its exit status by ``expect_rc`` only when it exited by itself.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from kharness.checks import fields
from kharness.checks.base import STEP_CURSOR, BaseCheck
from kharness.checks.kinds.run import judge_output
from kharness.checks.placeholders import regex_field, substitute

NAME = "program"
ORDER = 85
KEYS = frozenset({"source", "cflags", "include_dirs", "args", "stdin", "expect_rc", "expect_stdout",
                  "expect_stdout_file", "expect_stderr", "background"})
PATH_KEYS = ("source", "include_dirs", "expect_stdout_file")
GUEST_BIN = "/kh/bin"
BACKGROUND_DIR = "/tmp/kh-bg"
VALUE_PREFIX = "program:"      # values[VALUE_PREFIX + key(check)]: the binary in the guest (no placeholder can name it)
DIFF_LINES = 60                # of a failed expect_stdout_file's diff, in the message
TERM_GRACE = 3.0               # seconds a background program has to end after SIGTERM (and after SIGKILL)
START_WAIT = 5.0               # seconds for a background program's pid to be written


@dataclass(frozen=True, kw_only=True)
class ProgramCheck(BaseCheck):
    kind: ClassVar[str] = NAME
    source: tuple[str, ...]                  # absolute paths
    cflags: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    stdin: str | None = None
    expect_stdout: str | None = None
    expect_stdout_file: str | None = None    # absolute path
    expect_stderr: str | None = None
    background: bool = False


CHECK = ProgramCheck


def parse(table: dict, base: dict, err) -> ProgramCheck:
    if "source" not in table:
        raise err("'source' (the program's C file, or a list of them) is required")
    sources = _paths(table["source"])
    for s in sources:
        if not Path(s).is_file():
            raise err(f"'source': {s} is not a file")
    incs = _paths(table.get("include_dirs", []))
    for d in incs:
        if not Path(d).is_dir():
            raise err(f"'include_dirs': {d} is not a directory")
    cflags = table.get("cflags", [])
    if isinstance(cflags, str):
        try:
            cflags = shlex.split(cflags)
        except ValueError as e:
            raise err(f"'cflags': {e}") from None
    if not (isinstance(cflags, list) and all(isinstance(x, str) for x in cflags)):
        raise err("'cflags' must be a list of strings or one string such as \"-DDEBUG -Wall\"")
    args = table.get("args", [])
    if not (isinstance(args, list) and all(isinstance(x, str) for x in args)):
        raise err("'args' must be a list of strings, each one argument")
    fields.strings(table, err, "stdin")
    for k, v in (("args", " ".join(args)), ("stdin", table.get("stdin") or "")):
        if "\0" in v:
            raise err(f"'{k}' cannot hold a NUL character")
    if "expect_stdout" in table and "expect_stdout_file" in table:
        raise err("give 'expect_stdout' (a regex) or 'expect_stdout_file' (the exact output), not both")
    expected = table.get("expect_stdout_file")
    if expected is not None:
        try:
            Path(expected).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise err(f"'expect_stdout_file': {expected} cannot be read as text ({e})") from None
    background = table.get("background", False)
    if not isinstance(background, bool):
        raise err("'background' must be true or false")
    if background and base["repeat"] != 1:
        raise err("a background program runs once: leave out 'repeat'")
    name = table.get("name") or " ".join([Path(sources[0]).name, *(shlex.quote(a) for a in args)])
    return ProgramCheck(name=name, **base, source=tuple(sources), cflags=tuple(cflags), include_dirs=tuple(incs),
                        args=tuple(args), stdin=table.get("stdin"),
                        expect_rc=fields.any_integer(table, err, "expect_rc", 0),
                        expect_stdout=regex_field(err, "expect_stdout", table.get("expect_stdout")),
                        expect_stdout_file=expected,
                        expect_stderr=regex_field(err, "expect_stderr", table.get("expect_stderr")),
                        background=background)


def _paths(v) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def key(c: ProgramCheck) -> str:
    """Which program ``c`` runs (checks running the same program share one build and binary)."""
    blob = json.dumps([c.source, c.cflags, c.include_dirs])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def binary(c: ProgramCheck, values: dict[str, str]) -> str:
    path = values.get(VALUE_PREFIX + key(c))
    if path is None:   # the runner builds and delivers every program check's program first
        raise RuntimeError(f"check {c.name!r}: its program was not built for this run")
    return path


def _argv(c: ProgramCheck, values: dict[str, str]) -> str:
    words = [binary(c, values)] + [substitute(a, values, f"check {c.name!r}: 'args'") for a in c.args]
    return " ".join(shlex.quote(w) for w in words)


def command(c: ProgramCheck, values: dict[str, str], target=None) -> str:
    run = _argv(c, values)
    if c.stdin is not None:
        run = f"printf '%s' {shlex.quote(c.stdin)} | {run}"
    return f"{STEP_CURSOR}cd /tmp && {run}"


def judge(c: ProgramCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    problems = []
    if rc != c.expect_rc:
        problems.append(f"exit status {rc}, expected {c.expect_rc}")
    return problems + judge_streams(c, stdout, stderr, values)


def judge_streams(c: ProgramCheck, stdout: str, stderr: str, values: dict[str, str]) -> list[str]:
    problems = judge_output(c.name, values, ("stdout", stdout, c.expect_stdout), ("stderr", stderr, c.expect_stderr))
    if c.expect_stdout_file is not None:
        diff = compare_exact(Path(c.expect_stdout_file), stdout)
        if diff:
            problems.append(diff)
    return problems


def compare_exact(expected_file: Path, got: str) -> str:
    """'' when ``got`` is exactly the file's text; else what differs, as a unified diff (capped)."""
    want = expected_file.read_text()
    if got == want:
        return ""
    diff = list(difflib.unified_diff(want.splitlines(keepends=True), got.splitlines(keepends=True),
                                     fromfile=expected_file.name, tofile="stdout"))
    lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in diff]
    text = "".join(lines)
    shown = text.splitlines()
    if len(shown) > DIFF_LINES:
        text = "\n".join(shown[:DIFF_LINES]) + f"\n... ({len(shown) - DIFF_LINES} more diff lines)\n"
    return f"stdout differs from {expected_file.name}:\n{text.rstrip()}"


def texts(c: ProgramCheck):
    for a in c.args:
        yield "args", a
    for f in ("expect_stdout", "expect_stderr"):
        if getattr(c, f) is not None:
            yield f, getattr(c, f)


# --- a background program: started, left running, stopped and judged after the last check ------

def background_dir(slot: int) -> str:
    return f"{BACKGROUND_DIR}/{int(slot)}"


def start_command(c: ProgramCheck, values: dict[str, str], slot: int) -> str:
    """Start the program detached from the step (its output to files, its exit status written
    when it ends by itself or not), then print its pid, waiting at most START_WAIT for it."""
    d = background_dir(slot)
    stdin = "/dev/null"
    feed = ""
    if c.stdin is not None:
        stdin = f"{d}/in"
        feed = f"printf '%s' {shlex.quote(c.stdin)} > {stdin} && "
    loops = int(START_WAIT / 0.02)
    # The subshell waits for the program and records how it ended; its own output goes nowhere,
    # so nothing of it is left holding the step's output files.
    return (f"{STEP_CURSOR}rm -rf {d} && mkdir -p {d} && {feed}cd /tmp && "
            f"{{ ( {_argv(c, values)} < {stdin} > {d}/out 2> {d}/err & "
            f"echo $! > {d}/pid.tmp && mv {d}/pid.tmp {d}/pid; wait $!; echo $? > {d}/rc.tmp; mv {d}/rc.tmp {d}/rc ) "
            f"< /dev/null > /dev/null 2>&1 & }}; "
            f"i=0; while [ ! -s {d}/pid ] && [ $i -lt {loops} ]; do usleep 20000; i=$((i+1)); done; cat {d}/pid")


def _wait_rc(d: str) -> str:
    loops = int(TERM_GRACE / 0.1)
    return f"i=0; while [ ! -s {d}/rc ] && [ $i -lt {loops} ]; do usleep 100000; i=$((i+1)); done"


def stop_command(slot: int) -> str:
    """Stop the program if it still runs: ``<how it ended> <exit status>`` (exited, stopped by
    SIGTERM, killed by SIGKILL, or stuck: still there after SIGKILL)."""
    d = background_dir(slot)
    return (f"p=$(cat {d}/pid 2>/dev/null); e=exited; "
            f"if [ ! -s {d}/rc ]; then e=stopped; kill -TERM $p 2>/dev/null; {_wait_rc(d)}; "
            f"if [ ! -s {d}/rc ]; then e=killed; kill -KILL $p 2>/dev/null; {_wait_rc(d)}; fi; "
            f"[ -s {d}/rc ] || e=stuck; fi; echo $e $(cat {d}/rc 2>/dev/null)")


def stop_timeout(step_timeout: float) -> float:
    return step_timeout + 2 * TERM_GRACE


def collect_command(slot: int) -> str:
    """Its standard output and error, as they are."""
    d = background_dir(slot)
    return f"cat {d}/out 2>/dev/null; cat {d}/err >&2 2>/dev/null; true"


def parse_stop(stdout: str) -> tuple[str, int | None]:
    words = stdout.split()
    ended = words[0] if words and words[0] in ("exited", "stopped", "killed", "stuck") else "stuck"
    rc = int(words[1]) if len(words) > 1 and words[1].lstrip("-").isdigit() else None
    return ended, rc


ENDED = {"exited": "exited by itself", "stopped": "still running after the last check: stopped with SIGTERM",
         "killed": "still running after the last check: ignored SIGTERM, killed with SIGKILL",
         "stuck": "still running after the last check and still there after SIGKILL (stuck in the kernel?)"}


def judge_background(c: ProgramCheck, ended: str, rc: int | None, stdout: str, stderr: str,
                     values: dict[str, str]) -> list[str]:
    """What failed: its exit status only when it exited by itself (a program that had to be
    stopped is judged by its output); a program that would not die fails."""
    problems = []
    if ended == "exited" and rc != c.expect_rc:
        problems.append(f"exit status {rc}, expected {c.expect_rc}")
    if ended == "stuck":
        problems.append(ENDED["stuck"])
    return problems + judge_streams(c, stdout, stderr, values)
