"""A finding: one problem the kernel reported, or one the harness saw the guest have.

The set of kinds is closed (:class:`FindingKind`): a typo in a kind would silently break whoever
groups or filters findings by kind, so a :class:`Finding` refuses an unknown one when it is made.
The kernel-log scanner (:mod:`kharness.health`) makes most of them; the runner makes the kinds
in :data:`HARNESS_KINDS` from how the guest behaved, and places every finding in a run by giving
it its ``phase`` and whether it is ``blocking``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kharness.result.records import doc
from kharness.result.status import PHASES


class FindingKind(StrEnum):
    OOPS = "oops"
    NULL_DEREF = "null_deref"
    BUG = "bug"
    WARNING = "warning"
    PANIC = "panic"
    SOFT_LOCKUP = "soft_lockup"
    HARD_LOCKUP = "hard_lockup"
    GPF = "gpf"
    KASAN = "kasan"
    KFENCE = "kfence"
    UBSAN = "ubsan"
    KMEMLEAK = "kmemleak"
    LOCKDEP = "lockdep"
    MIGHT_SLEEP = "might_sleep"
    RCU_STALL = "rcu_stall"
    HUNG_TASK = "hung_task"
    OOM = "oom"
    ALLOC_FAILURE = "alloc_failure"
    TAINT = "taint"
    HANG = "hang"
    CHANNEL_LOST = "channel_lost"


# What each kind means, for the schema document (a kind without an entry fails its unit test).
KIND_DOCS: dict[FindingKind, str] = {
    FindingKind.OOPS: "an oops (a fault in kernel mode, or its die line: \"Oops: ... [#1]\")",
    FindingKind.NULL_DEREF: "a NULL pointer dereference (with its die line, one finding)",
    FindingKind.BUG: "a `BUG()`, `BUG: ...` report, list corruption, a SLUB or KCSAN report",
    FindingKind.WARNING: "a `WARN()` (a cut-here block)",
    FindingKind.PANIC: "\"Kernel panic - not syncing\"",
    FindingKind.SOFT_LOCKUP: "a soft lockup",
    FindingKind.HARD_LOCKUP: "a hard lockup (the NMI watchdog, or powerpc's own)",
    FindingKind.GPF: "a general protection fault",
    FindingKind.KASAN: "a KASAN report",
    FindingKind.KFENCE: "a KFENCE report",
    FindingKind.UBSAN: "a UBSAN report",
    FindingKind.KMEMLEAK: "a kmemleak record (after rmmod, on a debug kernel)",
    FindingKind.LOCKDEP: "a lockdep report",
    FindingKind.MIGHT_SLEEP: "\"sleeping function called from invalid context\"",
    FindingKind.RCU_STALL: "an RCU stall",
    FindingKind.HUNG_TASK: "a hung task (\"blocked for more than N seconds\")",
    FindingKind.OOM: "an OOM kill: from \"... invoked oom-killer\" to \"Out of memory: Killed process\"",
    FindingKind.ALLOC_FAILURE: "a \"page allocation failure\"; it blocks only when its call trace names a module "
                               "under test",
    FindingKind.TAINT: "a taint flag that means trouble (D, W, L, B, M) newly set during the phase",
    FindingKind.HANG: "a step that timed out; its report holds the sysrq backtraces",
    FindingKind.CHANNEL_LOST: "an insmod/rmmod that finished, as the guest's console reports, while the command "
                              "channel stayed silent: the module broke the harness's channel; its report is the "
                              "console",
}

# Kinds the runner judges from the guest's behaviour rather than from the kernel's own words.
HARNESS_KINDS: frozenset[FindingKind] = frozenset({FindingKind.HANG, FindingKind.CHANNEL_LOST})

# Field order of a finding in a result file.
FIELDS = ("kind", "summary", "report", "line", "module", "phase", "blocking")


@dataclass(frozen=True)
class Finding:
    """One problem the kernel reported, or one the harness saw the guest have, with the kernel's (or the console's) own words in `report`.

    ``line`` is the 1-based line of the headline in the scanned text; findings that do not come
    from a log line (taint, hang, channel_lost) use 0. ``module`` is the module the report blames,
    when it names one. ``phase`` and ``blocking`` are None until the runner places the finding in
    a run (``dataclasses.replace(f, phase=..., blocking=...)``); every finding in a result has both.
    """

    kind: FindingKind = doc("what kind of problem (see the table of kinds)")
    summary: str = doc("the headline, without log prefixes (for hang and channel_lost: what the harness saw)")
    report: str = doc("the kernel's own report (for hang: the sysrq backtraces; for channel_lost: the console), "
                      "capped at 16 KiB")
    line: int = doc("1-based line of the headline in the scanned log; 0 when not from a log line",
                    schema={"type": "integer", "minimum": 0})
    module: str | None = doc("the module the report blames: the one on the faulting instruction's line first, "
                             "then the headline's, then an \"in module X\" hint, then the first reliable "
                             "call-trace frame in a module", default=None)
    phase: str | None = doc("the phase whose health look (or step) found it", default=None,
                            schema={"enum": list(PHASES)})
    blocking: bool | None = doc("whether it fails the run. `false` for findings during boot, before the module "
                                "was loaded, an `alloc_failure` that is not the module's, and kmemleak records "
                                "whose allocation stack has no frame of the module (recorded, not held against "
                                "the module)", default=None, schema={"type": "boolean"})

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", FindingKind(self.kind))
        except ValueError:
            raise ValueError(f"unknown finding kind {self.kind!r} (known: {', '.join(FindingKind)})") from None
        if self.line < 0:
            raise ValueError(f"line must be >= 0, got {self.line}")

    def to_dict(self) -> dict:
        """A JSON-ready dict: every field, ``phase`` and ``blocking`` once the finding was placed."""
        d = {"kind": self.kind.value, "summary": self.summary, "report": self.report, "line": self.line,
             "module": self.module}
        if self.phase is not None:
            d["phase"] = self.phase
        if self.blocking is not None:
            d["blocking"] = self.blocking
        return d

    # Read access by key, as ``finding["kind"]``: findings were dicts in a run's result (and in
    # what Session.health() returns) before this model, and code written then keeps working.
    def __getitem__(self, key: str):
        if key not in FIELDS:
            raise KeyError(key)
        return self.to_dict().get(key)

    def get(self, key: str, default=None):
        return self.to_dict().get(key, default)
