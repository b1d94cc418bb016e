"""Why a module's symbols did not resolve: the kernel's log lines, explained from its exports.

When insmod fails with "unknown symbol in module", the reason is only in the kernel log
(``mymod: Unknown symbol video_register_device (err -2)``). For each such symbol this says, from
the kernel's ``Module.symvers`` (shipped with its headers) and the module tree's
``modules.symbols``: which module exports it (and that it was not loaded), that the export is
GPL-only and the module's license is not GPL-compatible, that nothing in this kernel exports it
(a symbol of another kernel version), that the module was built against another version of it
(a CRC mismatch), or that it lives in a namespace the module does not import.
"""

from __future__ import annotations

import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Mapping

from kharness.errors import InfraError

NOT_LOADED = "exporter-not-loaded"
GPL_ONLY = "gpl-only"
NOT_EXPORTED = "not-exported"
VERSION_MISMATCH = "version-mismatch"
NAMESPACE = "namespace-not-imported"
REFUSED = "refused"          # exported and loaded, yet refused: the kernel's own lines say more

# include/linux/license.h: license_is_gpl_compatible().
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL"})

_LINE = re.compile(
    r"(?P<mod>[\w-]+): (?:"
    r"Unknown symbol (?P<unknown>\S+) \(err (?P<err>-?\d+)\)"
    r"|disagrees about version of symbol (?P<version>\S+)"
    r"|no symbol version for (?P<nover>\S+)"
    r"|module uses symbol \((?P<nssym>[^)\s]+)\) from namespace (?P<ns>[^,\s]+), but does not import it)")


@dataclass(frozen=True)
class Export:
    """One line of Module.symvers."""

    crc: int | None
    module: str          # "vmlinux", or the exporting module's name
    gpl_only: bool | None
    namespace: str = ""


def read_symvers(text: str) -> dict[str, Export]:
    """``symbol -> Export`` from Module.symvers (``0xCRC<TAB>symbol<TAB>module<TAB>EXPORT_...<TAB>ns``)."""
    out: dict[str, Export] = {}
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < 4:
            continue
        try:
            crc = int(f[0], 16)
        except ValueError:
            crc = None
        mod = f[2] if f[2] == "vmlinux" else f[2].rsplit("/", 1)[-1].replace("-", "_")
        out[f[1]] = Export(crc, mod, f[3].endswith("_GPL"), f[4] if len(f) > 4 else "")
    return out


def read_module_crcs(path: Path) -> dict[str, int]:
    """``symbol -> CRC`` the module was built against (its ``__versions`` section; empty when the
    kernel has no CONFIG_MODVERSIONS)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
        except ELFError as e:
            raise InfraError(f"{path.name} is not an ELF file: {e}") from e
        sec = elf.get_section_by_name("__versions")
        if sec is None:
            return {}
        data = sec.data()
        word = 8 if elf.elfclass == 64 else 4
        fmt = ("<" if elf.little_endian else ">") + ("Q" if word == 8 else "I")
    out = {}
    for i in range(0, len(data) - 63, 64):   # struct modversion_info: a CRC, then the name
        crc = struct.unpack_from(fmt, data, i)[0]
        name = data[i + word:i + 64].split(b"\0", 1)[0].decode("ascii", "replace")
        if name:
            out[name] = crc & 0xffffffff
    return out


@dataclass(frozen=True)
class SymbolProblem:
    module: str              # the module that failed to load
    symbol: str
    kind: str                # one of the constants above
    exporter: str | None     # the module exporting it ("vmlinux": the kernel itself), if any
    message: str             # one sentence
    err: int | None = None   # the errno the kernel printed

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SymbolReport:
    problems: tuple[SymbolProblem, ...]
    summary: str             # one line for the verdict ("" when there is nothing to say)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "symbols": [p.to_dict() for p in self.problems]}


def parse_symbol_lines(text: str) -> dict[tuple[str, str], dict]:
    """``(module, symbol) -> what the kernel said`` (err, version, namespace), in log order."""
    seen: dict[tuple[str, str], dict] = {}
    for line in text.splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        mod = m.group("mod").replace("-", "_")
        sym = m.group("unknown") or m.group("version") or m.group("nover") or m.group("nssym")
        info = seen.setdefault((mod, sym), {})
        if m.group("unknown"):
            info["err"] = int(m.group("err"))
        elif m.group("version"):
            info["version"] = "disagrees"
        elif m.group("nover"):
            info["version"] = "missing"
        else:
            info["namespace"] = m.group("ns")
    return seen


def _license(module_license, module: str) -> str | None:
    if isinstance(module_license, Mapping):
        return module_license.get(module) or module_license.get(module.replace("_", "-"))
    return module_license


def explain_unknown_symbols(dmesg_text: str, tree, module_license: str | Mapping[str, str] | None = None,
                            loaded: Iterable[str] = (),
                            module_crcs: Mapping[str, Mapping[str, int]] | None = None) -> SymbolReport:
    """Explain every unresolved symbol the kernel log names. ``tree``: the kernel's
    :class:`~kharness.kernels.modtree.ModuleTree` (its ``symvers`` and ``exports``);
    ``module_license``: the failing module's MODULE_LICENSE (or ``{module: license}``);
    ``loaded``: the modules loaded at the time; ``module_crcs``: ``{module: read_module_crcs()}``
    to show both CRCs of a version mismatch."""
    loaded = {n.replace("-", "_") for n in loaded}
    problems = []
    for (mod, sym), info in parse_symbol_lines(dmesg_text).items():
        exp = tree.symvers.get(sym)
        if exp is None and sym in tree.exports:
            exp = Export(None, tree.exports[sym], None)
        lic = _license(module_license, mod)
        err = info.get("err")
        where = "the kernel itself" if exp and exp.module == "vmlinux" else (exp.module if exp else None)
        if "namespace" in info:
            ns = info["namespace"]
            kind, msg = NAMESPACE, (f"`{sym}` is in namespace {ns}, which {mod} does not import "
                                    f"(add MODULE_IMPORT_NS({ns}))")
        elif "version" in info:
            mine = (module_crcs or {}).get(mod, {}).get(sym)
            crcs = (f" (its CRC 0x{mine:08x}, the kernel's 0x{exp.crc:08x})"
                    if mine is not None and exp and exp.crc is not None else "")
            kind = VERSION_MISMATCH
            msg = (f"{mod} was built against another version of `{sym}`{crcs}: build it against "
                   f"this kernel's headers" if info["version"] == "disagrees" else
                   f"{mod} has no version (CRC) for `{sym}`, which this kernel requires")
        elif exp is None:
            kind, msg = NOT_EXPORTED, (f"nothing in {tree.label} exports `{sym}` (a symbol of another "
                                       f"kernel version, or one this kernel does not export)")
        elif exp.gpl_only and (lic is None or lic not in GPL_COMPATIBLE):
            said = f'license "{lic}"' if lic else "missing license"
            kind, msg = GPL_ONLY, (f"`{sym}` is exported GPL-only (EXPORT_SYMBOL_GPL) by {where}, and "
                                   f"{mod}'s {said} is not GPL-compatible")
        elif exp.module != "vmlinux" and exp.module not in loaded:
            kind, msg = NOT_LOADED, f"`{sym}` is exported by {exp.module}, which was not loaded"
        else:
            kind, msg = REFUSED, (f"`{sym}` is exported by {where}, yet the kernel refused it"
                                  + (f" (err {err})" if err is not None else ""))
        problems.append(SymbolProblem(mod, sym, kind, exp.module if exp else None, msg, err))
    return SymbolReport(tuple(problems), summarise(problems))


def summarise(problems: Iterable[SymbolProblem], limit: int = 3) -> str:
    """One line: the first ``limit`` explanations, and how many more there are."""
    problems = list(problems)
    if not problems:
        return ""
    head = "; ".join(p.message for p in problems[:limit])
    more = len(problems) - limit
    return f"unresolved symbols: {head}" + (f"; and {more} more" if more > 0 else "")
