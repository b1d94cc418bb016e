"""Find oopses, warnings, panics and their kin in a kernel log: one finding per report.

After each phase of a run (boot, load, check, unload) kharness hands the kernel log it captured
to :func:`scan_kernel_log`. Each finding's ``report`` - the kernel's own words, not a paraphrase -
is attached to the result, because that report is what a module author needs to fix the bug.

How the scanner works, and why it is shaped this way:

* Each line is first stripped of whatever the log transport put in front of the kernel's
  message (:func:`~kharness.health.headlines.strip_prefix`), so one set of patterns serves the serial console, ``dmesg``,
  ``dmesg -r``, ``dmesg -x`` and ``/dev/kmsg``.
* A *headline* is a line the kernel prints at the start of a report ("BUG: ...", "Oops: ...",
  "Kernel panic - not syncing: ..."). Patterns are anchored at the start of the message so that
  ordinary lines that merely mention a word ("... taints kernel.", a user-space
  "traps: ... general protection fault ...") are not findings.
* Each headline opens one report block; how the block ends depends on what kind of report it is,
  because the kernel ends them differently: oopses, WARN/BUG blocks and panics end at an
  ``---[ end ... ]---`` marker; KASAN, KFENCE and UBSAN are fenced by ``====`` lines; lockups,
  hung tasks, lockdep and friends simply stop after their call trace; a kmemleak record is the
  headline plus its indented lines; an OOM report ("... invoked oom-killer") runs through its
  memory and task dumps to its "Out of memory: Killed process" line. Any block also ends where
  the next report starts.
* Some reports legitimately contain a second headline: an x86 "BUG: kernel NULL pointer
  dereference" is followed by its "Oops: 0002 [#1] ..." line, an arm64 "Unable to handle kernel
  ..." by "Internal error: Oops: ...". That die line is folded into the fault's block so that
  one crash gives one finding. A panic is never folded: an oops that ends in a panic gives an
  oops finding and a panic finding, because "the kernel died" is worth saying on its own.
* With CONFIG_BUG_ON_DATA_CORRUPTION (Debian's kernels), lib/list_debug.c prints what is wrong
  ("list_del corruption, ...->next is LIST_POISON1") *before* BUG()'s cut-here line. That line
  is the report's headline and its first line: the cut-here block behind it is its body.
"""

from __future__ import annotations

import re

from kharness.health.headlines import (
    ARM_CUT_HERE_RE,
    ARM_FRAME_RE,
    CUT_HERE_FALLBACK,
    CUT_HERE_NATIVE_RE,
    CUT_HERE_RE,
    DELIM_RE,
    END_RE,
    HARNESS_RE,
    TRACE_LINE_RE,
    TRACE_START_RE,
    Rule,
    classify,
    strip_prefix,
)
from kharness.result.cap import REPORT_CAP, cap
from kharness.result.finding import Finding

# Reports end up in result files and terminal output; a runaway report (a lockdep dump of every
# held lock, a log with no end marker) must not bloat them, so each report is capped.
REPORT_LIMIT = REPORT_CAP
# Of a capped report, keep more of the head (headline, registers, top of the trace: what a reader
# needs most) than of the tail (the end marker).
_REPORT_HEAD = 0.75
# A report with no end marker would otherwise run to the end of the log; this bounds the damage.
_MAX_BLOCK_LINES = 2000
# Reports that end "after the call trace" (lockups, lockdep, ...) print their trace within a few
# dozen lines of the headline. If no trace shows up by then, the headline was a one-liner and
# what follows is unrelated log, so the block is cut back (see _short_end).
_PRE_TRACE_LIMIT = 120
# WARN(cond, fmt) on x86 prints the message between the cut-here line and the WARNING line;
# how far past the cut-here line to look for the real headline.
_CUT_HERE_WINDOW = 8

# "function+0x11/0x1000 [modname]" (optionally with a build id after the name).
_MODULE_SYM_RE = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+\s+\[([\w-]+)(?:\s+[0-9a-f]+)?\]")
# The line naming the faulting instruction on each architecture.
_IP_LINE_RE = re.compile(r"^(?:RIP: [0-9a-f]{4}:|EIP: |IP: |pc : |PC is at |NIP \[|epc : )")
_IN_MODULE_RE = re.compile(r"\bin module [\"']?([A-Za-z0-9_-]+)")


def _cut_here_headline(heads: list[str], i: int) -> tuple[int, Rule] | None:
    """Find the headline of the cut-here block that starts at line ``i``.

    Prefer the line the kernel's own report code prints (WARNING:/kernel BUG at/UBSAN:) over a
    WARN() message that happens to look like a headline; then any known headline; then simply
    the first non-empty line, as a warning. Every cut-here block ends at its end-trace marker.
    """
    window: list[int] = []
    for j in range(i + 1, min(len(heads), i + 1 + _CUT_HERE_WINDOW)):
        text = heads[j]
        if CUT_HERE_RE.match(text) or END_RE.match(text) or HARNESS_RE.match(text):
            break
        if not text:
            continue
        window.append(j)
        if CUT_HERE_NATIVE_RE.match(text):
            rule = classify(heads, j) or CUT_HERE_FALLBACK
            return j, rule._replace(mode="marker")
    for j in window:
        rule = classify(heads, j)
        if rule is not None:
            return j, rule._replace(mode="marker")
    if window:
        return window[0], CUT_HERE_FALLBACK
    return None


# Messages the kernel prints just before BUG() (CHECK_DATA_CORRUPTION with
# CONFIG_BUG_ON_DATA_CORRUPTION), so before the cut-here line rather than inside its block.
_PRE_CUT_HERE_RE = re.compile(r"^list_(?:add|del) corruption\b")
# How many lines after such a message to look for its cut-here line (another CPU may interleave).
_PRE_CUT_HERE_WINDOW = 3


def _corruption_cut_here(heads: list[str], i: int) -> int | None:
    """The cut-here line that follows the corruption message on line ``i``, if one does."""
    for j in range(i + 1, min(len(heads), i + 1 + _PRE_CUT_HERE_WINDOW)):
        if CUT_HERE_RE.match(heads[j]):
            return j
        if HARNESS_RE.match(heads[j]) or classify(heads, j) is not None:
            return None
    return None


def _is_trace_line(msg: str, text: str) -> bool:
    return msg[:1].isspace() or bool(TRACE_LINE_RE.match(text))


def _short_end(msgs: list[str], heads: list[str], h: int) -> int:
    """End of a report that never reached a call trace: headline plus its indented lines."""
    k = h + 1
    while k < len(msgs) and heads[k] and msgs[k][:1].isspace():
        k += 1
    return k


def _block_end(msgs: list[str], heads: list[str], h: int, rule: Rule, fenced: bool) -> int:
    """Return the index one past the last line of the report whose headline is line ``h``.

    ``fenced`` says the block opened with a ==== line, so a ==== line in a trace-mode report
    closes it (inclusive) rather than opening the next report.
    """
    n = len(heads)
    if rule.mode == "line":
        return h + 1
    absorbed_die = False
    in_trace = saw_frame = False
    j = h + 1
    limit = min(n, h + 1 + _MAX_BLOCK_LINES)
    while j < limit:
        text, msg = heads[j], msgs[j]
        if END_RE.match(text):
            return j + 1
        if HARNESS_RE.match(text) or CUT_HERE_RE.match(text):
            return j
        if rule.mode == "until" and rule.until is not None and rule.until.match(text):
            return j + 1
        other = classify(heads, j)
        if other is not None:
            # The die line of this very fault (Oops/Internal error) is part of its report.
            if other.role == "die" and rule.role == "fault" and not absorbed_die:
                absorbed_die = True
                j += 1
                continue
            return j
        if rule.mode == "delimited":
            if DELIM_RE.match(text):
                return j + 1
        elif rule.mode == "indented":
            if not text or not msg[:1].isspace():
                return j
        elif rule.mode == "trace":
            if DELIM_RE.match(text):
                return j + 1 if fenced else j
            if TRACE_START_RE.match(text):
                # A report may hold several traces (lockdep's chains, then "stack backtrace:"
                # and "Call Trace:"); only the end of the last one ends the report.
                in_trace, saw_frame = True, False
            elif not in_trace and ARM_FRAME_RE.match(text):
                in_trace = saw_frame = True   # 32-bit ARM: the first frame is the trace's start
            elif in_trace:
                if _is_trace_line(msg, text):
                    saw_frame = True
                elif saw_frame:
                    return j
            elif j - h > _PRE_TRACE_LIMIT:
                return _short_end(msgs, heads, h)
        j += 1
    return j


def _find_module(msgs: list[str], headline: str) -> str | None:
    """Name the module a report blames, or None.

    In order of trust: the [module] on the faulting instruction line (RIP/EIP/pc/PC is at/NIP),
    the [module] on the headline itself (WARNING ... at fn [mod], BUG: KASAN: ... in fn [mod]),
    an explicit "in module X", then the first reliable call-trace frame in a module. Frames
    marked "? " are stack garbage the unwinder could not vouch for, and "Modules linked in:"
    lists every loaded module, so neither is used.
    """
    for msg in msgs:
        text = msg.strip()
        if _IP_LINE_RE.match(text):
            match = _MODULE_SYM_RE.search(text)
            if match:
                return match.group(1)
    match = _MODULE_SYM_RE.search(headline)
    if match:
        return match.group(1)
    for msg in msgs:
        match = _IN_MODULE_RE.search(msg)
        if match:
            return match.group(1)
    for msg in msgs:
        text = msg.strip()
        if text.startswith(("? ", "Modules linked in")):
            continue
        match = _MODULE_SYM_RE.search(text)
        if match:
            return match.group(1)
    return None


def scan_kernel_log(text: str) -> list[Finding]:
    """Find every problem report in a kernel log, in order of appearance.

    One finding per report: a WARNING inside a cut-here block is one finding whose call trace
    is part of its report; a NULL dereference and its "Oops:" line are one finding; an oops
    that leads to a panic gives the oops finding and then a panic finding. ``report`` holds the
    report's original lines (timestamps included, so timing stays visible), capped at
    :data:`REPORT_LIMIT` bytes; ``summary`` is the headline without prefixes. Lines written by
    the harness itself ("kharness: ...") are never findings.
    """
    raw = [line.rstrip("\r") for line in text.split("\n")]
    msgs = [strip_prefix(line) for line in raw]
    heads = [msg.strip() for msg in msgs]
    findings: list[Finding] = []
    floor = 0  # lines before this belong to an earlier report
    i = 0
    while i < len(raw):
        title = None   # the headline line, when it is not the line the block's rule matched
        if CUT_HERE_RE.match(heads[i]):
            found = _cut_here_headline(heads, i)
            if found is None:
                i += 1
                continue
            h, rule = found
            start, fenced = i, False
        else:
            rule = classify(heads, i)
            if rule is None:
                i += 1
                continue
            h = i
            # KASAN, UBSAN, lockdep, SLUB open with a ==== fence; it belongs to the report.
            fenced = i - 1 >= floor and bool(DELIM_RE.match(heads[i - 1]))
            start = i - 1 if fenced else i
            if rule.role == "fault" and i - 1 >= floor and ARM_CUT_HERE_RE.match(heads[i - 1]):
                start = i - 1   # 32-bit ARM's "8<--- cut here ---" belongs to the fault it announces
            cut = _corruption_cut_here(heads, i) if _PRE_CUT_HERE_RE.match(heads[i]) else None
            if cut is not None:
                # The corruption line says what is wrong; the cut-here block after it is its BUG().
                found = _cut_here_headline(heads, cut)
                if found is not None:
                    title = i
                    h, rule = found
        end = _block_end(msgs, heads, h, rule, fenced)
        # A block that ran to the end of the text would otherwise drag blank lines along.
        last = end
        while last > h + 1 and not heads[last - 1]:
            last -= 1
        head = h if title is None else title
        findings.append(
            Finding(
                kind=rule.kind,
                summary=heads[head],
                report=cap("\n".join(raw[start:last]), REPORT_LIMIT, head=_REPORT_HEAD),
                line=head + 1,
                module=_find_module(msgs[start:last], heads[head]),
            )
        )
        i = floor = end
    return findings
