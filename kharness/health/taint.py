"""The kernel's taint mask: decode it, and turn newly set bad flags into findings."""

from __future__ import annotations

from dataclasses import dataclass

from kharness.result.finding import Finding


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
