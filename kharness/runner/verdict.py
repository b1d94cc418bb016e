"""The run's verdict as pure functions over data: which kernel reports count, what a guest that
stopped answering means (a hang, a panic, a silenced channel, a dead QEMU), whether a phase's
kernel log matched, and the final status and summary. Nothing here talks to a guest, so the
unit tests judge every case from recorded console text (tests/unit/test_runner_verdicts.py)."""

from __future__ import annotations

import dataclasses
import re

from kharness import health
from kharness.checks.placeholders import compile_regex
from kharness.errors import KharnessError, ModuleFailure
from kharness.result.cap import REPORT_CAP
from kharness.result.finding import Finding, FindingKind
from kharness.result.model import Result, cap
from kharness.result.records import TaintRecord
from kharness.vm.errors import CommandTimeout, GuestDied, GuestError

MODULE_FRAME_RE = re.compile(r"(\w+\+0x[0-9a-f]+/0x[0-9a-f]+) \[(\w+)\]")
_MODULE_COMMAND_RE = re.compile(r"(insmod|rmmod) (\w+)")


def scan(text: str, phase: str, *, tested: set[str], baseline: bool = False,
         shadow_map: tuple[str, str] | None = None) -> list[Finding]:
    """Every kernel report in ``text``, marked blocking when it fails the run: never during boot
    (``baseline``), and for the reports that count only when they blame the module (an allocation
    failure, an OOM), only when the module they name is one under test."""
    found = health.scan_kernel_log(text)
    if shadow_map:
        # Reports name the build tree's paths: show the user's own.
        a, b = shadow_map
        found = [dataclasses.replace(f, summary=f.summary.replace(a, b), report=f.report.replace(a, b))
                 for f in found]
    return [dataclasses.replace(f, phase=phase, blocking=not baseline and (
                f.kind not in health.BLAMED_ONLY or f.module in tested)) for f in found]


def blocking(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.blocking]


def taint_findings(phase: str, before: int, after: int) -> list[Finding]:
    """Taint flags the phase added that fail the run (out-of-tree and unsigned modules do not)."""
    return [dataclasses.replace(f, phase=phase, blocking=True) for f in health.taint_findings(before, after)]


def taint_record(taint: int) -> TaintRecord:
    return TaintRecord(taint, health.taint_string(taint),
                       [f"{t.letter}: {t.description}" for t in health.decode_taint(taint)])


def kunit_record(suites: list | None, phase: str, log: str) -> list | None:
    """The result's ``kunit`` with ``phase``'s suites read again from its whole kernel log so far
    (a suite may span two looks); None while no phase printed any."""
    found = health.kunit_results(log, phase)
    kept = [s for s in suites or [] if s["phase"] != phase]
    return (kept + found) or None


def kunit_failure(suites: list | None, phase: str) -> str | None:
    """Why ``phase`` fails on its KUnit results: a failed or crashed case (or suite)."""
    mine = [s for s in suites or [] if s["phase"] == phase]
    bad = health.kunit_failures(mine)
    if not bad:
        return None
    total = sum(len(s["cases"]) for s in mine)
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return f"KUnit: {len(bad)} of {total} case(s) failed: {shown}"


def reported(f: Finding) -> str:
    """How a blocking report ends a phase."""
    return f"kernel reported {f.kind}: {f.summary}"


def module_command(what: str) -> tuple[str, str] | None:
    """("insmod"|"rmmod", module) when a guest step was loading or unloading a module."""
    m = _MODULE_COMMAND_RE.fullmatch(what)
    return (m.group(1), m.group(2)) if m else None


def channel_lost(what: str, state: str | None) -> str | None:
    """After an insmod/rmmod that did not answer, the module's state as the console reports it:
    if its init returned (or it is gone), the command finished too and it is the command channel
    that went silent. None: a real hang (or no second way into the guest)."""
    cmd = module_command(what)
    if cmd is None or (cmd[0], state) not in (("insmod", "live"), ("rmmod", "gone")):
        return None
    done = "its init returned" if cmd[0] == "insmod" else "it was unloaded"
    return (f"the command channel went silent during {what}: {done} (the guest still answers on "
            f"the console) but no answer came back; the module broke the harness's channel")


def channel_lost_finding(message: str, console: str, what: str, phase: str) -> Finding:
    return Finding(FindingKind.CHANNEL_LOST, message, cap(console, REPORT_CAP), 0,
                   module=what.split()[-1], phase=phase, blocking=True)


def guest_trouble(e: GuestError, what: str, phase: str, text: str, found: list[Finding],
                  asked_sysrq: bool) -> tuple[str, list[Finding]]:
    """A guest step that never answered, with the module in the kernel: the failure message and
    the findings to add. ``text`` is what the console showed (after sysrq-l/w when the guest was
    asked, ``asked_sysrq``), ``found`` the blocking reports already found in it."""
    panic = isinstance(e, GuestDied) and e.panic
    if asked_sysrq:
        msg = f"{what} did not return within its timeout (hang)"
    elif panic:
        msg = f"kernel panic during {what}"
    else:
        msg = f"guest stopped during {what}: {e.message}"
    extra = []
    if isinstance(e, CommandTimeout):
        # Where the stuck task is: the blocked-task dump names it best, the CPU backtraces next.
        frame = MODULE_FRAME_RE.search(text.split("Show Blocked State", 1)[-1]) or MODULE_FRAME_RE.search(text)
        if frame:
            msg += f", stuck in {frame.group(1)} [{frame.group(2)}]"
        extra.append(Finding(FindingKind.HANG, msg, cap(text, REPORT_CAP), 0, phase=phase, blocking=True))
    elif found and not panic:
        msg += f" ({found[0].kind}: {found[0].summary})"
    if panic:
        pf = next((f for f in found if f.kind == FindingKind.PANIC), None)
        if pf:
            msg = f"kernel panic during {what}: {pf.summary}"
    return msg, extra


def expect_dmesg_miss(phase: str, regex: str | None, values: dict[str, str], log: str) -> str | None:
    """``[load]``/``[unload]`` ``expect_dmesg``: why the phase's kernel log does not match the
    regex ({module}, {param.NAME}... substituted), None if it does (or there is none)."""
    if not regex:
        return None
    # A placeholder's value is matched literally (re.escape): "1.5" must not match "175".
    rx = compile_regex(regex, values, f"[{phase}] expect_dmesg")
    return None if rx.search(log) else f"kernel log did not match expect_dmesg {rx.pattern!r}"


class Skipped(Exception):
    """The module's own files exclude this cell (a dkms.conf's ``BUILD_EXCLUSIVE_*``): the run
    stops before anything is built or booted, and its status is ``skipped``, not a failure."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def settle(r: Result, e: BaseException | None) -> None:
    """The verdict: pass, skipped, a module failure (``fail``) or a usage/infrastructure error; a
    phase still running when the run ended is in error."""
    if e is None:
        r.status = "pass"
        r.summary = "built, loaded, checked and unloaded cleanly"
    elif isinstance(e, Skipped):
        r.status = "skipped"
        r.summary = f"skipped: {e.reason}"
    elif isinstance(e, ModuleFailure):
        r.status = "fail"
        r.summary = f"{e.phase}: {e.message}"
    elif isinstance(e, KharnessError):
        r.status = "error"
        r.error = {"kind": e.kind, "message": str(e)}
        r.summary = str(e)
        for p in r.phases:
            if p.status == "running":
                p.message = str(e)
    for p in r.phases:
        if p.status == "running":
            p.status = "error"
