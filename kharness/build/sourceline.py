"""Where in the module's own source a kernel report points: ``func+0xoff/0xsize [module]`` to
``file:line``, as the kernel's scripts/faddr2line does it, against the .ko kharness built.

A module built against Debian's headers has DWARF (their config has CONFIG_DEBUG_INFO), so the
target's ``addr2line`` can answer for an address within a section of the relocatable .ko: the
symbol's value in that section plus the offset the report gives. The file it names is in the
build's shadow tree, whose files are links to the user's: resolved, they are the user's own paths.
Anything missing (no debug info, no cross addr2line, a frame outside the module) means no line,
never an error: a location is a convenience on top of the report, which stays the truth.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kharness import proc
from kharness.build.makefile import shadow_chain
from kharness.paths import cache_dir

# "init_oops_init+0x23/0x36 [init_oops]", optionally with the module's build id after its name.
FRAME_RE = re.compile(r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x[0-9a-f]+\s+"
                      r"\[(?P<mod>[\w-]+)(?:\s+[0-9a-f]+)?\]")
# The line naming the faulting instruction, on each architecture (after any log prefix).
IP_RE = re.compile(r"(?:RIP: [0-9a-f]{4}:|EIP: |\bIP: |\bpc : |PC is at |NIP \[|epc : )")
# addr2line's answer: "path:line", maybe " (discriminator N)"; "??" when it does not know.
_ANSWER_RE = re.compile(r"^(?P<file>.+):(?P<line>\d+)(?: \(discriminator \d+\))?$")
MAX_FRAMES = 8
ADDR2LINE_TIMEOUT = 20


@dataclass(frozen=True)
class Frame:
    func: str
    offset: int      # the address to look up, relative to the function's start
    module: str


@dataclass(frozen=True)
class SourceLine:
    file: str        # the user's own file, absolute
    line: int


def norm(module: str) -> str:
    """The kernel spells a module's name with ``_`` where its file may have ``-``."""
    return module.replace("-", "_")


def frames(report: str, module: str) -> list[Frame]:
    """The report's frames in ``module``, most telling first: the faulting instruction's, then the
    call trace's reliable frames (a ``? `` frame is stack garbage). A call-trace frame is a return
    address, one past the call, so 1 is taken off it (as the kernel's decode_stacktrace does)."""
    want = norm(module)
    exact, returns = [], []
    for raw in report.splitlines():
        m = FRAME_RE.search(raw)
        if not m or norm(m.group("mod")) != want:
            continue
        at_ip = IP_RE.search(raw[:m.start()]) is not None
        if not at_ip and re.search(r"(?:^|[\]\s])\?\s+$", raw[:m.start()]):
            continue
        off = int(m.group("off"), 16)
        f = Frame(m.group("func"), off if at_ip else max(off - 1, 0), want)
        if f not in exact and f not in returns:
            (exact if at_ip else returns).append(f)
    return (exact + returns)[:MAX_FRAMES]


def symbol(ko: Path, name: str) -> tuple[str, int] | None:
    """(section name, value) of function ``name`` in the relocatable ``ko``."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    try:
        with open(ko, "rb") as fh:
            elf = ELFFile(fh)
            for sec in elf.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                for sym in sec.get_symbol_by_name(name) or ():
                    idx = sym["st_shndx"]
                    if sym["st_info"]["type"] == "STT_FUNC" and isinstance(idx, int):
                        return elf.get_section(idx).name, sym["st_value"]
    except (OSError, ELFError):
        return None
    return None


def addr2line(tool: str, ko: Path, section: str, address: int) -> list[tuple[str, int]]:
    """``(file, line)`` for ``address`` in ``section`` of ``ko``, innermost inlined location first."""
    try:
        p = proc.run([tool, "-e", str(ko), "-j", section, "-i", f"{address:#x}"], timeout=ADDR2LINE_TIMEOUT,
                     what=f"`{tool}`")
    except (OSError, proc.ProcessTimeout):
        return []
    if p.returncode != 0:
        return []
    out = []
    for line in p.stdout.splitlines():
        m = _ANSWER_RE.match(line.strip())
        if m and not m.group("file").startswith("??"):
            out.append((m.group("file"), int(m.group("line"))))
    return out


def inside(path: str, directory: Path) -> bool:
    real, top = os.path.realpath(path), os.path.realpath(directory)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def users_file(path: str, module_dir: Path) -> bool:
    """A file of the user's: within what the build's shadow tree mirrors (the module directory and
    the two above it, where ``$(src)/../common`` sources live), and not kharness's own (the kernel
    headers, a generated ``.mod.c``: both in the cache)."""
    return (any(inside(path, d) for d in shadow_chain(module_dir.resolve()))
            and not inside(path, cache_dir()) and os.path.isfile(path))


def locate(report: str, module: str, ko: Path, module_dir: Path, tool: str) -> SourceLine | None:
    """The first line of the user's own sources that a frame of ``report`` in ``module`` resolves
    to (an inlined kernel helper's line is passed over for its caller's, in the module)."""
    for f in frames(report, module):
        sym = symbol(ko, f.func)
        if sym is None:
            continue
        section, value = sym
        for file, line in addr2line(tool, ko, section, value + f.offset):
            if line > 0 and users_file(file, module_dir):
                return SourceLine(os.path.realpath(file), line)
    return None


def addr2line_for(cross_prefix: str) -> str | None:
    """The target's addr2line (binutils of its cross compiler), None when the host lacks it."""
    return shutil.which(f"{cross_prefix}addr2line")


def locate_finding(finding: dict, result: dict, module_dir: Path, cross_prefix: str) -> SourceLine | None:
    """Where ``finding`` (a result's finding) points in the module's sources, when kharness can tell:
    the finding blames a module of this run, its .ko is still there, and the target's addr2line too."""
    blamed = finding.get("module")
    if not blamed:
        return None
    ko = next((Path(m["path"]) for m in result.get("modules") or ()
               if norm(m.get("name", "")) == norm(blamed) and m.get("path")), None)
    tool = addr2line_for(cross_prefix)
    if ko is None or tool is None or not ko.is_file():
        return None
    return locate(finding.get("report") or finding.get("summary") or "", blamed, ko, module_dir, tool)
