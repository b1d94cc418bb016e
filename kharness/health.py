"""Kernel health: find oopses, warnings, panics and their kin in a kernel log, and decode taint.

After each phase of a run (boot, load, check, unload) kharness hands the kernel log it captured
to :func:`scan_kernel_log`, and the values of ``/proc/sys/kernel/tainted`` from before and after
the phase to :func:`taint_findings`. Every :class:`Finding` fails the run, and its ``report`` -
the kernel's own words, not a paraphrase - is attached to the result, because that report is
what a module author needs to fix the bug.

How the scanner works, and why it is shaped this way:

* Each line is first stripped of whatever the log transport put in front of the kernel's
  message (:func:`strip_prefix`), so one set of patterns serves the serial console, ``dmesg``,
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
from dataclasses import dataclass
from typing import NamedTuple

# Every value Finding.kind may take. Kept as a tuple so callers can iterate it in a stable order.
KINDS: tuple[str, ...] = (
    "oops",
    "bug",
    "warning",
    "panic",
    "soft_lockup",
    "hard_lockup",
    "gpf",
    "kasan",
    "kfence",
    "ubsan",
    "kmemleak",
    "lockdep",
    "rcu_stall",
    "hung_task",
    "might_sleep",
    "taint",
    "null_deref",
    "oom",
    "alloc_failure",
)

# Kinds that fail a run only when the report blames a module under test (Finding.module): a
# failed allocation is the module's bug when its own call failed, and only then; the kernel's
# or a user-space check's allocation failing is recorded, not held against the module.
BLAMED_ONLY: frozenset[str] = frozenset({"alloc_failure"})

# Reports end up in result files and terminal output; a runaway report (a lockdep dump of every
# held lock, a log with no end marker) must not bloat them, so each report is capped.
REPORT_LIMIT = 16 * 1024

# A report with no end marker would otherwise run to the end of the log; this bounds the damage.
_MAX_BLOCK_LINES = 2000
# Reports that end "after the call trace" (lockups, lockdep, ...) print their trace within a few
# dozen lines of the headline. If no trace shows up by then, the headline was a one-liner and
# what follows is unrelated log, so the block is cut back (see _short_end).
_PRE_TRACE_LIMIT = 120
# WARN(cond, fmt) on x86 prints the message between the cut-here line and the WARNING line;
# how far past the cut-here line to look for the real headline.
_CUT_HERE_WINDOW = 8


@dataclass(frozen=True)
class Finding:
    """One problem the kernel reported (or one bad taint flag that appeared).

    ``line`` is the 1-based line of the headline in the scanned text; taint findings do not
    come from a log line and use 0. ``module`` is the module the report blames, when it names
    one: the [module] on the faulting IP/PC/NIP line first, then the headline's, then an
    "in module X" hint, then the first reliable call-trace frame in a module.
    """

    kind: str
    summary: str
    report: str
    line: int
    module: str | None = None

    def __post_init__(self) -> None:
        # A typo in a kind would silently break whoever groups or filters findings by kind.
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.line < 0:
            raise ValueError(f"line must be >= 0, got {self.line}")

    def to_dict(self) -> dict:
        """Return a JSON-ready dict with every field, for result files."""
        return {
            "kind": self.kind,
            "summary": self.summary,
            "report": self.report,
            "line": self.line,
            "module": self.module,
        }


# --------------------------------------------------------------------------------------------
# Prefix stripping
# --------------------------------------------------------------------------------------------

# The prefixes come in a fixed order (transport first, then timestamp, then caller id), so one
# anchored regex with optional parts strips them all without ever looking into the message.
# Each part may be followed by a single separator space; only one, because call-trace frames
# are printed with a leading space of their own and that indentation is part of the message.
_PREFIX_RE = re.compile(
    r"""
    ^
    (?:[A-Z][a-z]{2}\x20[\x20\d]\d\x20\d\d:\d\d:\d\d\x20\S+\x20kernel:\x20?)?  # syslog
    (?:(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])
       \s*:\s*(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:\x20?)?     # dmesg -x
    (?:(?:<\d{1,3}>|\d+,\d+,\d+,[^;\s]*;)\x20?)?                             # dmesg -r, /dev/kmsg
    (?:(?:\[\s*\d+\.\d+\]                                                    # [   12.345678]
       |\[[A-Z][a-z]{2}\x20[A-Z][a-z]{2}\x20[\x20\d]\d\x20\d\d:\d\d:\d\d\x20\d{4}\]  # dmesg -T
       )\x20?)?
    (?:\[\s*[TC]\d+\]\x20?)?                                                 # [  T123] / [ C0]
    """,
    re.VERBOSE,
)


def strip_prefix(line: str) -> str:
    """Return the kernel's message from one log line, without what the log transport added.

    Removes, when present and in this order: a syslog "Mon DD HH:MM:SS host kernel: " prefix,
    a ``dmesg -x`` "kern  :warn  : " prefix, a raw "<4>" level (``dmesg -r``) or a
    ``/dev/kmsg`` "4,123,456,-;" header, a "[   12.345678]" (or ``dmesg -T``) timestamp, and a
    "[  T123]" / "[ C0]" caller id. Exactly one separator space after each is removed; any
    further indentation belongs to the message (call-trace frames are indented) and is kept.
    A trailing carriage return from a serial console is dropped.
    """
    line = line.rstrip("\r\n")
    match = _PREFIX_RE.match(line)
    return line[match.end() :] if match else line


# --------------------------------------------------------------------------------------------
# Headlines
# --------------------------------------------------------------------------------------------


class _Rule(NamedTuple):
    """How to recognise one kind of headline and how its report block ends.

    mode: "marker" ends at ---[ end ... ]---, "delimited" at a ==== line, "trace" after the
    call trace, "indented" at the first line that is not indented, "line" is a one-liner,
    "until" after the first line that matches ``until`` (inclusive).
    role: "fault" headlines accept one following die line ("Oops: ... [#1]") into their block;
    "die" marks such a die line; "report" is everything else.
    """

    pattern: re.Pattern[str] | None
    kind: str
    mode: str
    role: str
    until: re.Pattern[str] | None = None


def _rule(pattern: str, kind: str, mode: str, role: str = "report", until: str | None = None) -> _Rule:
    return _Rule(re.compile(pattern), kind, mode, role, re.compile(until) if until else None)


_LOCKDEP_TITLES = (
    r"possible (?:circular|recursive) locking"
    r"|possible irq lock inversion"
    r"|inconsistent lock state"
    r"|\S+-safe -> \S+-unsafe lock order"
    r"|bad unlock balance"
    r"|held lock freed"
    r"|lock held when returning to user space"
    r"|suspicious RCU usage"
    r"|bad contention detected"
    r"|Nested lock was not taken"
    # kernel/locking/lockdep.c assign_lock_key(): a lock whose key is not static - usually a
    # spinlock or mutex used before spin_lock_init()/mutex_init(). Lockdep then turns itself off.
    r"|trying to register non-static key"
)

# mm/oom_kill.c __oom_kill_process(): "Out of memory: Killed process ..." (global OOM),
# "Memory cgroup out of memory: Killed process ...", "Out of memory (oom_kill_allocating_task):
# Killed process ..." - the line that ends an OOM report.
_OOM_KILLED = r"^(?:Out of memory|Memory cgroup out of memory)(?: \([\w ]+\))?: Killed process \d+"

# Order matters: specific patterns before the generic "BUG: " and die-line patterns.
_RULES: tuple[_Rule, ...] = (
    # x86 before 6.9 prints "general protection fault, ...: 0000 [#1]", 6.9+ "Oops: general ...".
    _rule(r"^(?:Oops: )?general protection fault\b", "gpf", "marker"),
    # x86 "BUG: kernel NULL pointer dereference, address: ...", pre-4.19 x86 "BUG: unable to
    # handle kernel NULL pointer dereference at ...", powerpc "BUG: Kernel NULL pointer ...".
    _rule(r"^BUG: (?:unable to handle )?[Kk]ernel NULL pointer dereference", "null_deref",
          "marker", "fault"),
    _rule(r"^Unable to handle kernel NULL pointer dereference", "null_deref", "marker", "fault"),
    # x86 "BUG: unable to handle page fault for address", powerpc "BUG: Unable to handle kernel
    # data access on write at ...", arm/arm64 "Unable to handle kernel paging request at ...".
    _rule(r"^BUG: [Uu]nable to handle ", "oops", "marker", "fault"),
    _rule(r"^Unable to handle kernel ", "oops", "marker", "fault"),
    _rule(r"^BUG: KASAN: ", "kasan", "delimited"),
    _rule(r"^BUG: KFENCE: ", "kfence", "delimited"),
    _rule(r"^BUG: KCSAN: ", "bug", "delimited"),
    _rule(r"^(?:watchdog: )?BUG: soft lockup\b", "soft_lockup", "trace"),
    _rule(r"^BUG: (?:sleeping function called from invalid context|assuming atomic context)",
          "might_sleep", "trace"),
    _rule(r"^(?:(?:NMI )?watchdog: )?(?:CPU\d+: )?Watchdog detected hard LOCKUP", "hard_lockup",
          "trace"),
    # powerpc (arch/powerpc/kernel/watchdog.c, pr_fmt "watchdog: "): a CPU that sees its own
    # timer stuck ("CPU 3 self-detected hard LOCKUP @ fn+0x1c/0x40 [mod]"), or one that sees
    # others miss their heartbeat ("CPU 0 detected hard LOCKUP on other CPUs 3"); the stuck
    # CPUs' "CPU 3 Hard LOCKUP" register dumps that follow belong to the latter's report.
    _rule(r"^(?:watchdog: )?CPU \d+ (?:self-detected hard LOCKUP @ |detected hard LOCKUP on other CPUs\b)",
          "hard_lockup", "trace"),
    # mm/oom_kill.c dump_header(): "<comm> invoked oom-killer: gfp_mask=0x..."; the report goes
    # on through Mem-Info and the task list to the kill itself.
    _rule(r"^.+ invoked oom-killer: gfp_mask=0x[0-9a-f]+", "oom", "until", until=_OOM_KILLED),
    _rule(_OOM_KILLED, "oom", "line"),
    # mm/page_alloc.c warn_alloc(): "<comm>: page allocation failure: order:N, mode:0x...", then
    # the allocating stack (which names the module when it was the module's allocation).
    _rule(r"^.+: page allocation failure: order:\d+", "alloc_failure", "trace"),
    # lib/list_debug.c with CONFIG_BUG_ON_DATA_CORRUPTION: printed just before BUG()'s cut-here
    # block (see scan_kernel_log); without it, WARN() prints it inside the block.
    _rule(r"^list_(?:add|del) corruption\b", "bug", "trace"),
    _rule(rf"^(?:\[ )?(?:WARNING|INFO): (?:{_LOCKDEP_TITLES})", "lockdep", "trace"),
    _rule(r"^inconsistent lock state$", "lockdep", "trace"),
    # "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "... self-detected stall on CPU".
    _rule(r"^(?:rcu: )?(?:INFO: )?rcu_\w+ (?:self-)?detected (?:expedited )?stalls?\b",
          "rcu_stall", "trace"),
    _rule(r"^INFO: task .+:\d+ blocked for more than \d+ seconds", "hung_task", "trace"),
    _rule(r"^Kernel panic - not syncing\b", "panic", "marker"),
    # Die lines always carry the die counter "[#N]", which keeps a module's own
    # pr_info("Oops: ...") from looking like a crash. x86 also prints "invalid opcode: 0000
    # [#1]" (BUG()), "divide error: 0000 [#1]", ... with or without a leading "Oops: ".
    _rule(r"^(?:Oops|Internal error): .*\[#\d+\]", "oops", "marker", "die"),
    _rule(r"^(?:Oops: )?[a-z][a-z0-9 ]*: [0-9a-f]{4} \[#\d+\]", "oops", "marker", "die"),
    _rule(r"^UBSAN: ", "ubsan", "delimited"),
    # "unreferenced object" comes from /sys/kernel/debug/kmemleak; the count line is what the
    # kernel log itself says after a scan, and is all there is when the file is not read.
    _rule(r"^unreferenced object 0x[0-9a-f]+", "kmemleak", "indented"),
    _rule(r"^kmemleak: \d+ new suspected memory leaks?\b", "kmemleak", "line"),
    _rule(r"^kernel BUG at ", "bug", "marker", "fault"),
    _rule(r"^WARNING: (?:CPU: \d+ PID: \d+|at )", "warning", "marker"),
    _rule(r"^BUG: ", "bug", "trace"),
    # SLUB debugging: "BUG kmalloc-64 (Tainted: G    B   O): Right Redzone overwritten".
    _rule(r"^BUG [\w.:-]+ \((?:Not tainted|Tainted: [^)]*)\): ", "bug", "trace"),
)

# One alternation of every headline pattern: nearly all log lines match none, and a single
# search rejects them much faster than trying each rule in turn.
_ANY_RULE_RE = re.compile(
    "|".join(f"(?:{rule.pattern.pattern})" for rule in _RULES if rule.pattern is not None)
)

# Lockdep reports have many titles; all start "WARNING: " right under a ==== fence, and none
# has the "WARNING: CPU: N PID: N" shape of a WARN(), so that context identifies the rest.
_LOCKDEP_FALLBACK = _Rule(None, "lockdep", "trace", "report")
# A cut-here block whose headline matches nothing known is still a WARN-style report.
_CUT_HERE_FALLBACK = _Rule(None, "warning", "marker", "report")

_CUT_HERE_RE = re.compile(r"^-+\[ cut here \]-+$")
# The lines report_bug()/__warn() themselves print after the cut-here line.
_CUT_HERE_NATIVE_RE = re.compile(r"^(?:WARNING: (?:CPU: \d+ PID: \d+|at )|kernel BUG at |UBSAN: )")
_END_RE = re.compile(r"^-+\[ end (?:trace\b|Kernel panic\b)")
_DELIM_RE = re.compile(r"^={10,}$")
# The harness writes its own markers into the kernel log; they are never part of a report and
# a report that has not ended by then has been cut short.
_HARNESS_RE = re.compile(r"^kharness:")

_TRACE_START_RE = re.compile(r"^(?:Call [Tt]race|Backtrace|stack backtrace)\s*:?$")
# Lines that belong to a call trace even though they are not indented: arm32 "[<c0101f7c>]"
# frames, powerpc "[c000...] [c000...] fn" frames, x86 stack markers, and the register dumps
# that x86 and powerpc print inside a trace when it crosses an exception or syscall entry.
_TRACE_LINE_RE = re.compile(
    r"^(?:\[<[0-9a-f]+>\]"
    r"|\[[0-9a-f]{8,16}\] \[[0-9a-f]{8,16}\]"
    r"|</?(?:TASK|IRQ|NMI|SOFTIRQ|EOI)>"
    r"|\? "
    r"|-{2,} interrupt\b"
    r"|(?:RIP|EIP|RSP|ESP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|GS|CS|DS|ES|CR\d|DR\d|Code"
    r"|NIP|LR|CTR|REGS|MSR|CFAR|XER|IRQMASK|GPR\d\d|pc|lr|sp|x\d{1,2})\s*(?::|\s\[))"
)

# "function+0x11/0x1000 [modname]" (optionally with a build id after the name).
_MODULE_SYM_RE = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+\s+\[([\w-]+)(?:\s+[0-9a-f]+)?\]")
# The line naming the faulting instruction on each architecture.
_IP_LINE_RE = re.compile(r"^(?:RIP: [0-9a-f]{4}:|EIP: |IP: |pc : |PC is at |NIP \[|epc : )")
_IN_MODULE_RE = re.compile(r"\bin module [\"']?([A-Za-z0-9_-]+)")


def _classify(heads: list[str], i: int) -> _Rule | None:
    """Return the rule whose headline pattern matches message line ``i``, if any."""
    text = heads[i]
    if not text or _HARNESS_RE.match(text):
        return None
    if _ANY_RULE_RE.match(text):
        for rule in _RULES:
            if rule.pattern is not None and rule.pattern.match(text):
                return rule
    if text.startswith("WARNING: ") and i > 0 and _DELIM_RE.match(heads[i - 1]):
        return _LOCKDEP_FALLBACK
    return None


def _cut_here_headline(heads: list[str], i: int) -> tuple[int, _Rule] | None:
    """Find the headline of the cut-here block that starts at line ``i``.

    Prefer the line the kernel's own report code prints (WARNING:/kernel BUG at/UBSAN:) over a
    WARN() message that happens to look like a headline; then any known headline; then simply
    the first non-empty line, as a warning. Every cut-here block ends at its end-trace marker.
    """
    window: list[int] = []
    for j in range(i + 1, min(len(heads), i + 1 + _CUT_HERE_WINDOW)):
        text = heads[j]
        if _CUT_HERE_RE.match(text) or _END_RE.match(text) or _HARNESS_RE.match(text):
            break
        if not text:
            continue
        window.append(j)
        if _CUT_HERE_NATIVE_RE.match(text):
            rule = _classify(heads, j) or _CUT_HERE_FALLBACK
            return j, rule._replace(mode="marker")
    for j in window:
        rule = _classify(heads, j)
        if rule is not None:
            return j, rule._replace(mode="marker")
    if window:
        return window[0], _CUT_HERE_FALLBACK
    return None


# Messages the kernel prints just before BUG() (CHECK_DATA_CORRUPTION with
# CONFIG_BUG_ON_DATA_CORRUPTION), so before the cut-here line rather than inside its block.
_PRE_CUT_HERE_RE = re.compile(r"^list_(?:add|del) corruption\b")
# How many lines after such a message to look for its cut-here line (another CPU may interleave).
_PRE_CUT_HERE_WINDOW = 3


def _corruption_cut_here(heads: list[str], i: int) -> int | None:
    """The cut-here line that follows the corruption message on line ``i``, if one does."""
    for j in range(i + 1, min(len(heads), i + 1 + _PRE_CUT_HERE_WINDOW)):
        if _CUT_HERE_RE.match(heads[j]):
            return j
        if _HARNESS_RE.match(heads[j]) or _classify(heads, j) is not None:
            return None
    return None


def _is_trace_line(msg: str, text: str) -> bool:
    return msg[:1].isspace() or bool(_TRACE_LINE_RE.match(text))


def _short_end(msgs: list[str], heads: list[str], h: int) -> int:
    """End of a report that never reached a call trace: headline plus its indented lines."""
    k = h + 1
    while k < len(msgs) and heads[k] and msgs[k][:1].isspace():
        k += 1
    return k


def _block_end(msgs: list[str], heads: list[str], h: int, rule: _Rule, fenced: bool) -> int:
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
        if _END_RE.match(text):
            return j + 1
        if _HARNESS_RE.match(text) or _CUT_HERE_RE.match(text):
            return j
        if rule.mode == "until" and rule.until is not None and rule.until.match(text):
            return j + 1
        other = _classify(heads, j)
        if other is not None:
            # The die line of this very fault (Oops/Internal error) is part of its report.
            if other.role == "die" and rule.role == "fault" and not absorbed_die:
                absorbed_die = True
                j += 1
                continue
            return j
        if rule.mode == "delimited":
            if _DELIM_RE.match(text):
                return j + 1
        elif rule.mode == "indented":
            if not text or not msg[:1].isspace():
                return j
        elif rule.mode == "trace":
            if _DELIM_RE.match(text):
                return j + 1 if fenced else j
            if _TRACE_START_RE.match(text):
                # A report may hold several traces (lockdep's chains, then "stack backtrace:"
                # and "Call Trace:"); only the end of the last one ends the report.
                in_trace, saw_frame = True, False
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


def _cap(report: str, limit: int = REPORT_LIMIT) -> str:
    """Cap ``report`` at ``limit`` UTF-8 bytes, marker included.

    Keeps the head (headline, registers, top of the trace - what a reader needs most) and a
    shorter tail (the end marker), cut at line boundaries, with "[... truncated N bytes ...]"
    in between, N being the number of bytes dropped.
    """
    data = report.encode("utf-8")
    if len(data) <= limit:
        return report
    # N <= len(data), so a marker sized for len(data) is at least as long as the real one.
    reserve = len(f"\n[... truncated {len(data)} bytes ...]\n".encode())
    keep = limit - reserve
    head_n = keep * 3 // 4
    tail_n = keep - head_n
    head = data[:head_n]
    cut = head.rfind(b"\n")
    if cut > 0:
        head = head[:cut]
    tail = data[len(data) - tail_n :]
    cut = tail.find(b"\n")
    if 0 <= cut < len(tail) - 1:
        tail = tail[cut + 1 :]
    head_s = head.decode("utf-8", errors="ignore")
    tail_s = tail.decode("utf-8", errors="ignore")
    dropped = len(data) - len(head_s.encode()) - len(tail_s.encode())
    return f"{head_s}\n[... truncated {dropped} bytes ...]\n{tail_s}"


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
        if _CUT_HERE_RE.match(heads[i]):
            found = _cut_here_headline(heads, i)
            if found is None:
                i += 1
                continue
            h, rule = found
            start, fenced = i, False
        else:
            rule = _classify(heads, i)
            if rule is None:
                i += 1
                continue
            h = i
            # KASAN, UBSAN, lockdep, SLUB open with a ==== fence; it belongs to the report.
            fenced = i - 1 >= floor and bool(_DELIM_RE.match(heads[i - 1]))
            start = i - 1 if fenced else i
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
                report=_cap("\n".join(raw[start:last])),
                line=head + 1,
                module=_find_module(msgs[start:last], heads[head]),
            )
        )
        i = floor = end
    return findings


# --------------------------------------------------------------------------------------------
# Taint
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaintFlag:
    """One bit of the kernel's taint mask.

    ``letter`` is what the kernel prints in "Tainted: ..." when the bit is set. ``bad`` is
    True when the bit means the kernel hit a problem (it died, warned, locked up, saw a bad
    page or a machine check), as opposed to recording a fact about what was loaded or how.
    """

    bit: int
    letter: str
    description: str
    bad: bool

    @property
    def mask(self) -> int:
        """The flag's value in /proc/sys/kernel/tainted."""
        return 1 << self.bit


# Documentation/admin-guide/tainted-kernels.rst, bits 0..18.
TAINT_FLAGS: tuple[TaintFlag, ...] = (
    TaintFlag(0, "P", "proprietary module was loaded", False),
    TaintFlag(1, "F", "module was force loaded", False),
    TaintFlag(2, "S", "kernel running on an out of specification system", False),
    TaintFlag(3, "R", "module was force unloaded", False),
    TaintFlag(4, "M", "processor reported a Machine Check Exception (MCE)", True),
    TaintFlag(5, "B", "bad page referenced or some unexpected page flags", True),
    TaintFlag(6, "U", "taint requested by userspace application", False),
    TaintFlag(7, "D", "kernel died recently, i.e. there was an OOPS or BUG", True),
    TaintFlag(8, "A", "ACPI table overridden by user", False),
    TaintFlag(9, "W", "kernel issued warning", True),
    TaintFlag(10, "C", "staging driver was loaded", False),
    TaintFlag(11, "I", "workaround for bug in platform firmware applied", False),
    TaintFlag(12, "O", 'externally-built ("out-of-tree") module was loaded', False),
    TaintFlag(13, "E", "unsigned module was loaded", False),
    TaintFlag(14, "L", "soft lockup occurred", True),
    TaintFlag(15, "K", "kernel has been live patched", False),
    TaintFlag(16, "X", "auxiliary taint, defined for and used by distros", False),
    TaintFlag(17, "T", "kernel was built with the struct randomization plugin", False),
    TaintFlag(18, "N", "an in-kernel test has been run", False),
)

_FLAG_BY_BIT = {flag.bit: flag for flag in TAINT_FLAGS}


def _check_taint(value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"taint value must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"taint value must be >= 0, got {value}")


def decode_taint(value: int) -> list[TaintFlag]:
    """Return the flags set in a taint value, in bit order.

    Bits newer than this table (a newer kernel) decode to a flag with letter "?" and
    ``bad=False``: reported, but not failing a run over a meaning we cannot know.
    """
    _check_taint(value)
    flags = []
    bit = 0
    while value >> bit:
        if value >> bit & 1:
            flags.append(
                _FLAG_BY_BIT.get(bit) or TaintFlag(bit, "?", f"unknown taint bit {bit}", False)
            )
        bit += 1
    return flags


def taint_string(value: int) -> str:
    """Return the letters of the set flags in bit order, e.g. 12288 -> "OE", 4608 -> "WO"."""
    return "".join(flag.letter for flag in decode_taint(value))


def taint_findings(before: int, after: int) -> list[Finding]:
    """Return one "taint" finding per bad flag set in ``after`` but not in ``before``.

    Flags already set before the phase were reported by the phase that set them, and harmless
    flags (O, E, ... from loading the module under test) are expected, so neither is a finding.
    Each report lists every flag now set, since the whole picture helps to read the problem.
    """
    _check_taint(before)
    _check_taint(after)
    new_bad = [flag for flag in decode_taint(after & ~before) if flag.bad]
    if not new_bad:
        return []
    lines = [f"taint {after} (was {before}): {taint_string(after) or '-'}", "flags now set:"]
    for flag in decode_taint(after):
        new = " (new)" if before >> flag.bit & 1 == 0 else ""
        problem = " [problem]" if flag.bad else ""
        lines.append(f"  bit {flag.bit:2d}  {flag.letter}  {flag.description}{problem}{new}")
    report = "\n".join(lines)
    return [
        Finding(
            kind="taint",
            summary=f"kernel tainted: {flag.letter} ({flag.description})",
            report=report,
            line=0,
        )
        for flag in new_bad
    ]
