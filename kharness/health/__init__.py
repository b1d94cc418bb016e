"""Kernel health: find oopses, warnings, panics and their kin in a kernel log, and decode taint.

After each phase of a run (boot, load, check, unload) kharness hands the kernel log it captured
to :func:`scan_kernel_log`, and the values of ``/proc/sys/kernel/tainted`` from before and after
the phase to :func:`taint_findings`. Every :class:`~kharness.result.finding.Finding` they return
carries the kernel's own words in its ``report``, because that report is what a module author
needs to fix the bug. How the scanner works: :mod:`kharness.health.scan`. KUnit suites a module
ran are read from the same log (:func:`kunit_results`; the KTAP reader: :mod:`kharness.health.ktap`).
"""

from __future__ import annotations

from kharness.health.headlines import strip_prefix
from kharness.health.kunit import failures as kunit_failures
from kharness.health.kunit import kunit_results
from kharness.health.scan import REPORT_LIMIT, scan_kernel_log
from kharness.health.taint import TAINT_FLAGS, TaintFlag, decode_taint, taint_findings, taint_string
from kharness.result.finding import HARNESS_KINDS, Finding, FindingKind

__all__ = ["KINDS", "BLAMED_ONLY", "REPORT_LIMIT", "Finding", "TaintFlag", "TAINT_FLAGS", "strip_prefix",
           "scan_kernel_log", "decode_taint", "taint_string", "taint_findings", "kunit_results", "kunit_failures"]

# The kinds the scanner and taint_findings produce: every kind but those the runner judges from
# the guest's behaviour (hang, channel_lost). The closed set and its meanings: kharness.result.finding.
KINDS: tuple[str, ...] = tuple(k.value for k in FindingKind if k not in HARNESS_KINDS)

# Kinds that fail a run only when the report blames a module under test (Finding.module): a
# failed allocation is the module's bug when its own call failed, and only then; the kernel's
# or a user-space check's allocation failing is recorded, not held against the module.
BLAMED_ONLY: frozenset[str] = frozenset({"alloc_failure"})
