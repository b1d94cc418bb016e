"""Kernel-log headlines: the line that starts each kind of report, and how its block ends.

A log line is first stripped of whatever its transport put in front of the kernel's message
(:func:`strip_prefix`); :func:`classify` then names the :class:`Rule` whose headline pattern
the message matches, if any. The report blocks themselves are cut in :mod:`kharness.health.scan`.
"""

from __future__ import annotations

import re
from typing import NamedTuple


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


class Rule(NamedTuple):
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


def _rule(pattern: str, kind: str, mode: str, role: str = "report", until: str | None = None) -> Rule:
    return Rule(re.compile(pattern), kind, mode, role, re.compile(until) if until else None)


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
RULES: tuple[Rule, ...] = (
    # x86 before 6.9 prints "general protection fault, ...: 0000 [#1]", 6.9+ "Oops: general ...".
    _rule(r"^(?:Oops: )?general protection fault\b", "gpf", "marker"),
    # x86 "BUG: kernel NULL pointer dereference, address: ...", pre-4.19 x86 "BUG: unable to
    # handle kernel NULL pointer dereference at ...", powerpc "BUG: Kernel NULL pointer ...".
    _rule(r"^BUG: (?:unable to handle )?[Kk]ernel NULL pointer dereference", "null_deref",
          "marker", "fault"),
    _rule(r"^Unable to handle kernel NULL pointer dereference", "null_deref", "marker", "fault"),
    # 32-bit ARM (arch/arm/mm/fault.c) names a fault it has no handler for after its
    # "8<--- cut here ---" line: "Unhandled fault: page domain fault (0x81b) at 0x00000000"; an
    # address in the first page is a NULL dereference like the other architectures' reports.
    _rule(r"^Unhandled fault: .* at 0x0{5}[0-9a-f]{3}$", "null_deref", "marker", "fault"),
    _rule(r"^Unhandled fault: ", "oops", "marker", "fault"),
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
    "|".join(f"(?:{rule.pattern.pattern})" for rule in RULES if rule.pattern is not None)
)

# Lockdep reports have many titles; all start "WARNING: " right under a ==== fence, and none
# has the "WARNING: CPU: N PID: N" shape of a WARN(), so that context identifies the rest.
_LOCKDEP_FALLBACK = Rule(None, "lockdep", "trace", "report")
# A cut-here block whose headline matches nothing known is still a WARN-style report.
CUT_HERE_FALLBACK = Rule(None, "warning", "marker", "report")

CUT_HERE_RE = re.compile(r"^-+\[ cut here \]-+$")
# The lines report_bug()/__warn() themselves print after the cut-here line.
CUT_HERE_NATIVE_RE = re.compile(r"^(?:WARNING: (?:CPU: \d+ PID: \d+|at )|kernel BUG at |UBSAN: )")
END_RE = re.compile(r"^-+\[ end (?:trace\b|Kernel panic\b)")
DELIM_RE = re.compile(r"^={10,}$")
# The harness writes its own markers into the kernel log; they are never part of a report and
# a report that has not ended by then has been cut short.
HARNESS_RE = re.compile(r"^kharness:")

TRACE_START_RE = re.compile(r"^(?:Call [Tt]race|Backtrace|stack backtrace)\s*:?$")
# 32-bit ARM prints no trace header: its unwinder's frames ("kmalloc_large from
# alloc_fail_init+0x30/0x1000 [alloc_fail]") start the trace themselves, and the trace ends with
# the "Exception stack(0x... to 0x...)" dump of the user registers (in TRACE_LINE_RE below).
# Its fault handler opens a report with its own cut-here line, before the fault's headline.
ARM_CUT_HERE_RE = re.compile(r"^8<-+ cut here -+$")
ARM_FRAME_RE = re.compile(r"^\S+(?: \[[\w-]+\])? from \S+\+0x[0-9a-f]+/0x[0-9a-f]+")
# Lines that belong to a call trace even though they are not indented: arm32 "[<c0101f7c>]"
# frames, powerpc "[c000...] [c000...] fn" frames, x86 stack markers, and the register dumps
# that x86 and powerpc print inside a trace when it crosses an exception or syscall entry.
TRACE_LINE_RE = re.compile(
    r"^(?:\[<[0-9a-f]+>\]"
    r"|\[[0-9a-f]{8,16}\] \[[0-9a-f]{8,16}\]"
    r"|</?(?:TASK|IRQ|NMI|SOFTIRQ|EOI)>"
    r"|\? "
    r"|-{2,} interrupt\b"
    r"|Exception stack\(0x"
    r"|[0-9a-f]{4}:(?: {1,}[0-9a-f]{8})+$"
    r"|(?:RIP|EIP|RSP|ESP|RAX|RBX|RCX|RDX|RSI|RDI|RBP|R\d{1,2}|FS|GS|CS|DS|ES|CR\d|DR\d|Code"
    r"|NIP|LR|CTR|REGS|MSR|CFAR|XER|IRQMASK|GPR\d\d|pc|lr|sp|x\d{1,2})\s*(?::|\s\[))"
)


def classify(heads: list[str], i: int) -> Rule | None:
    """Return the rule whose headline pattern matches message line ``i``, if any."""
    text = heads[i]
    if not text or HARNESS_RE.match(text):
        return None
    if _ANY_RULE_RE.match(text):
        for rule in RULES:
            if rule.pattern is not None and rule.pattern.match(text):
                return rule
    if text.startswith("WARNING: ") and i > 0 and DELIM_RE.match(heads[i - 1]):
        return _LOCKDEP_FALLBACK
    return None
