"""Companion programs found in a module directory, and kharness.toml's one-line opt-in.

Module authors ship user-space programs beside their modules: a ``test.c`` with the
``test.expected`` its output is diffed against, a ``tests/`` or ``test/`` folder, the LKMPG's
``other/`` (``userspace_ioctl.c`` including ``../chardev.h``), LDD3's ``misc-progs/``, ``user*/``
folders, or a top-level C file with a ``main`` beside the module's own sources.
:func:`discover` lists them (``kharness run DIR --list-programs``); nothing is ever built unless
kharness.toml asks, with one line::

    programs = ["test.c", "other/userspace_ioctl.c"]     # or: programs = "discovered"

Each entry becomes a ``program`` check with the defaults discovery found (``X.expected`` beside
``X.c``: its exact expected output). A program needing arguments, input or a background run is
written as a ``[[check]]`` of kind ``program`` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import UsageError

# Folders whose C files with a main() are the module's user-space programs, by convention.
FOLDERS = ("tests", "test", "other", "misc-progs")
FOLDER_GLOBS = ("user*",)
KEY = "programs"
DISCOVERED = "discovered"
_MAIN_RE = re.compile(r"^[ \t]*(?:(?:static|extern)\s+)?(?:int|void)\s+main\s*\(", re.M)
# What only kernel code has: a module's init, its licence, kernel-only headers, exported symbols.
_KERNEL_RE = re.compile(r"\bmodule_init\s*\(|\bmodule_\w*(?:driver|device)\w*\s*\(|\bMODULE_LICENSE\s*\(|"
                        r"\bEXPORT_SYMBOL|\b__init\b|#\s*include\s*<linux/(?:module|init|kernel|slab)\.h>")
_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
MAX_SIZE = 1 << 20    # a larger .c file is generated code, not a test program


@dataclass(frozen=True)
class Candidate:
    source: str                     # relative to the module directory, as kharness.toml names it
    expected: str | None = None     # its expected-output file, when there is one
    includes: tuple[str, ...] = ()  # the "local" headers it includes

    def toml_line(self) -> str:
        return f'{KEY} = ["{self.source}"]'

    def describe(self) -> str:
        parts = [f"exact output: {self.expected}" if self.expected else "exit status 0"]
        if self.includes:
            parts.append("includes " + ", ".join(self.includes))
        return "; ".join(parts)


def _text(p: Path) -> str | None:
    try:
        if p.stat().st_size > MAX_SIZE:
            return None
        return p.read_text(errors="replace")
    except OSError:
        return None


def is_program(text: str) -> bool:
    """C code with a ``main`` and nothing of a kernel module: a user-space program."""
    code = _COMMENT_RE.sub(" ", text)
    return bool(_MAIN_RE.search(code)) and not _KERNEL_RE.search(code)


def has_main(p: Path) -> bool:
    text = _text(p)
    return text is not None and is_program(text)


def expected_for(source: Path) -> Path | None:
    """``X.expected`` beside ``X.c``, if there is one."""
    p = source.with_suffix(".expected")
    return p if p.is_file() else None


def _folders(directory: Path) -> list[Path]:
    out = [directory / f for f in FOLDERS if (directory / f).is_dir()]
    for g in FOLDER_GLOBS:
        out += sorted(p for p in directory.glob(g) if p.is_dir() and p not in out)
    return out


def discover(directory: Path) -> list[Candidate]:
    """The candidate programs of ``directory``: top-level C files with a main (a test.c with its
    test.expected first), then those in the conventional folders (and one level below them)."""
    directory = directory.resolve()
    files = sorted(directory.glob("*.c"))
    for folder in _folders(directory):
        files += sorted(folder.glob("*.c")) + sorted(folder.glob("*/*.c"))
    found = []
    for f in files:
        if not f.is_file() or not has_main(f):
            continue
        exp = expected_for(f)
        rel = f.relative_to(directory).as_posix()
        incs = tuple(dict.fromkeys(_INCLUDE_RE.findall(_COMMENT_RE.sub(" ", _text(f) or ""))))
        found.append(Candidate(rel, exp.relative_to(directory).as_posix() if exp else None, incs))
    # A program with its expected output is what its authors run: list those first.
    return sorted(found, key=lambda c: (c.expected is None, c.source.count("/"), c.source))


def listing(directory: Path) -> str:
    """What ``kharness run DIR --list-programs`` prints."""
    found = discover(directory)
    if not found:
        return (f"no companion programs found in {directory} (looked for C files with a main() at the top "
                f"level and in {', '.join(FOLDERS)}, user*/)\n")
    lines = [f"companion programs in {directory} (none is built unless kharness.toml asks):", ""]
    for c in found:
        lines += [f"  {c.source}  ({c.describe()})", f"      {c.toml_line()}"]
    lines += ["", "all of them:", "  " + f'{KEY} = [' + ", ".join(f'"{c.source}"' for c in found) + "]",
              f'  (or {KEY} = "{DISCOVERED}"; a program that needs arguments, input or a background run: '
              f'a [[check]] with kind = "program")']
    return "\n".join(lines) + "\n"


def tables(value, directory: Path, where: str) -> list[dict]:
    """kharness.toml's ``programs`` line as the ``[[check]]`` tables it stands for."""
    if value == DISCOVERED:
        found = discover(directory)
        if not found:
            raise UsageError(f"{where}: \"{DISCOVERED}\" but no companion program is found in {directory}",
                             hint="see `kharness run DIR --list-programs`")
        entries = [c.source for c in found]
    elif isinstance(value, list) and value and all(isinstance(x, str) and x.strip() for x in value):
        entries = value
    else:
        raise UsageError(f"{where}: must be a list of C files such as [\"test.c\"], or \"{DISCOVERED}\"",
                         hint="see `kharness run DIR --list-programs`")
    out = []
    for e in dict.fromkeys(entries):
        p = (directory / e).resolve()
        if not p.is_file():
            raise UsageError(f"{where}: {e} does not exist (paths are relative to {directory})",
                             hint="see `kharness run DIR --list-programs`")
        table = {"kind": "program", "name": e, "source": e}
        exp = expected_for(p)
        if exp is not None:
            table["expect_stdout_file"] = str(exp)
        out.append(table)
    return out
