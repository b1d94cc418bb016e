"""Debug kernels: the kernel's own bug checkers, built in, so that module bugs a distribution
kernel lets pass (a use-after-free, a leak, a lock-order inversion, an out-of-bounds shift)
become reports, and reports become failures.

A debug kernel is built from Debian's ``linux-source-<series>`` (or the user's tree): ``tinyconfig``
+ the target's own fragment (``images/kernel-configs/<board>.config``, what makes it boot on the
board) + one fragment per checker (``images/kernel-configs/debug/<checker>.config``). It is cached
like any kernel kharness builds. ``kharness run --kernel 6.1-debug`` uses every checker;
``--debug kasan,ubsan`` a chosen set.

The checkers report into the kernel log, where the health scanner (:mod:`kharness.health`) already
finds KASAN, UBSAN, lockdep and might_sleep reports. kmemleak is the exception: it only reports
when asked, so the runner scans after ``rmmod`` (see :func:`kmemleak_scan_command`) and keeps the
records whose allocation stack runs through the module under test (:func:`attribute_leaks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import UsageError
from kharness.paths import data_dir

DEBUG_LOCALVERSION = "-khdebug"
DEBUG_SUFFIX = "-debug"     # --kernel 6.1-debug
FRAGMENT_DIR = "kernel-configs/debug"

# Checker -> what it catches (for --help and the result).
CHECKERS: dict[str, str] = {
    "kasan": "use-after-free, out-of-bounds and double-free accesses (KASAN)",
    "kmemleak": "memory the module allocated and never freed, found by a scan after rmmod",
    "lockdep": "lock-order inversions, recursive locking, sleeping in atomic context",
    "ubsan": "undefined behaviour: out-of-bounds shifts and array indices (UBSAN)",
}
ALL = tuple(CHECKERS)

# Guests of debug kernels need more memory: KASAN's shadow is an eighth of RAM, kmemleak and
# lockdep keep metadata for every object and lock.
DEBUG_MEMORY_MB = 512

# kmemleak reports only objects older than this (MSECS_MIN_AGE in mm/kmemleak.c, 5 s), so the
# scan after rmmod waits until the module's last allocation is that old.
KMEMLEAK_MIN_AGE = 5.0
KMEMLEAK = "/sys/kernel/debug/kmemleak"


def parse_checkers(text: str | None) -> tuple[str, ...]:
    """``"kasan,kmemleak"`` (or ``"all"``) -> the checkers, in their canonical order."""
    if text is None:
        return ()
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not words:
        raise UsageError("--debug needs a list of checkers", hint=f"e.g. --debug {','.join(ALL)} (or all)")
    if "all" in words:
        return ALL
    unknown = [w for w in words if w not in CHECKERS]
    if unknown:
        raise UsageError(f"unknown debug checker(s) {', '.join(unknown)}", hint=f"known: {', '.join(ALL)}, all")
    return tuple(c for c in ALL if c in words)


def split_kernel(wanted: str | None) -> tuple[str | None, bool]:
    """``"6.1-debug"`` -> ``("6.1", True)``; anything else unchanged, False."""
    if wanted and wanted.endswith(DEBUG_SUFFIX) and re.fullmatch(r"\d+\.\d+", wanted[: -len(DEBUG_SUFFIX)]):
        return wanted[: -len(DEBUG_SUFFIX)], True
    return wanted, False


def debug_fragments(profile, checkers: tuple[str, ...]) -> list[Path]:
    """The config fragments for ``checkers`` on ``profile`` (empty when there are none)."""
    if not checkers:
        return []
    from kharness.targets import all_targets

    if not profile.debug_checkers or not profile.config_fragment:
        boards = ", ".join(t.name for t in all_targets().values() if t.debug_checkers)
        raise UsageError(f"kharness cannot build a debug kernel for {profile.name}",
                         hint=f"debug kernels are built for {boards}")
    unsupported = [c for c in checkers if c not in profile.debug_checkers]
    if unsupported:
        raise UsageError(f"{', '.join(unsupported)} is not available on {profile.name}",
                         hint=f"available: {', '.join(profile.debug_checkers)}")
    d = data_dir("images") / FRAGMENT_DIR
    return [d / f"{c}.config" for c in checkers]


def kmemleak_scan_commands(wait: float) -> tuple[str, str]:
    """Two guest shell commands for after rmmod: the first scans twice at once, the second waits
    ``wait`` seconds (until the module's newest allocations are old enough to be reported), scans
    again and prints the records. Both do nothing on a kernel without kmemleak.

    Why three scans: kmemleak reports an object only when it was unreferenced *and unchanged*
    (same checksum) in two consecutive scans, and the first scan that finds an object
    unreferenced only records its checksum. Why the task stacks are not scanned: stale slots in
    the stacks of live tasks keep a freshly leaked pointer "referenced" (seen on arm64, where the
    leak then went unreported); once the module is gone, no task can legitimately hold its
    memory only in a local variable, and what the kernel keeps of a module's memory is reachable
    from kernel data, which is still scanned."""
    guard = f"[ -e {KMEMLEAK} ] || exit 0; "
    return (guard + f"echo stack=off > {KMEMLEAK}; echo scan > {KMEMLEAK}; echo scan > {KMEMLEAK}",
            guard + f"sleep {max(0.0, wait):.1f}; echo scan > {KMEMLEAK}; cat {KMEMLEAK}")


@dataclass(frozen=True)
class ModuleMap:
    """Where one module's sections were loaded, and its symbols: turns the raw addresses of an
    unloaded module (kmemleak prints ``0xffffffffc0201234`` once the module is gone) back into
    ``leak_init+0x1d/0x60 [leak]``."""
    name: str
    sections: dict[str, int]                            # section name -> load address
    sizes: dict[str, int]                               # section name -> size
    symbols: dict[str, list[tuple[int, int, str]]]      # section -> [(offset, size, name)], sorted

    def symbolize(self, addr: int) -> str | None:
        for sec, base in self.sections.items():
            size = self.sizes.get(sec, 0)
            if base <= addr < base + size:
                off = addr - base
                best = None
                for start, length, name in self.symbols.get(sec, ()):
                    if start > off:
                        break
                    if best is None or start > best[0]:   # the first (preferred) name at an offset
                        best = (start, length, name)
                if best:
                    return f"{best[2]}+{off - best[0]:#x}/{max(best[1], 1):#x} [{self.name}]"
                return f"{sec}+{off:#x} [{self.name}]"
        return None


def module_map(name: str, ko: Path, sections_text: str) -> ModuleMap:
    """``sections_text``: ``grep . /sys/module/<name>/sections/.*`` in the guest."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    loaded = {}
    for line in sections_text.splitlines():
        path, _, value = line.rpartition(":")
        sec = path.rsplit("/", 1)[-1]
        try:
            loaded[sec] = int(value.strip(), 16)
        except ValueError:
            continue
    sizes: dict[str, int] = {}
    symbols: dict[str, list[tuple[int, int, str]]] = {}
    with open(ko, "rb") as f:
        elf = ELFFile(f)
        names = {}
        for i, s in enumerate(elf.iter_sections()):
            names[i] = s.name
            if s.name in loaded:
                sizes[s.name] = s["sh_size"]
        for s in elf.iter_sections():
            if not isinstance(s, SymbolTableSection):
                continue
            for sym in s.iter_symbols():
                if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(sym["st_shndx"], int):
                    continue
                sec = names.get(sym["st_shndx"])
                if sec in loaded:
                    symbols.setdefault(sec, []).append((sym["st_value"], sym["st_size"], sym.name))
    for v in symbols.values():
        # module_init()/module_exit() add init_module/cleanup_module as aliases of the real
        # functions: at equal offsets the author's name comes first.
        v.sort(key=lambda x: (x[0], x[2] in ("init_module", "cleanup_module"), x[2]))
    return ModuleMap(name, loaded, sizes, symbols)


_ADDR_RE = re.compile(r"\b0x([0-9a-f]{8,16})\b")


def symbolize_report(text: str, maps: list[ModuleMap]) -> str:
    """Replace raw addresses that fall in a tested module with ``func+off/size [module]``."""
    def sub(m: re.Match) -> str:
        addr = int(m.group(1), 16)
        for mm in maps:
            s = mm.symbolize(addr)
            if s:
                return s
        return m.group(0)
    return _ADDR_RE.sub(sub, text) if maps else text


def leak_records(text: str) -> list[str]:
    """The ``unreferenced object`` records of a kmemleak report, each with its backtrace."""
    out: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("unreferenced object"):
            out.append([line])
        elif out and line.startswith((" ", "\t")):
            out[-1].append(line)
    return ["\n".join(r) for r in out]


def attribute_leaks(text: str, modules: list[str]) -> tuple[list[str], list[str]]:
    """(records whose stack names one of ``modules``, the others: leaks of the kernel itself)."""
    mine, others = [], []
    pats = [re.compile(rf"\[{re.escape(m)}\]") for m in modules]
    for rec in leak_records(text):
        (mine if any(p.search(rec) for p in pats) else others).append(rec)
    return mine, others
