"""A board kernel's kbuild tree on the host, given by the user: ``--headers DIR`` (an unpacked
``linux-headers-<release>`` package, a board vendor's headers, ``/lib/modules/<release>/build``
copied from the board) or, with ``--remote``, ``--kernel-tree DIR`` (the board's kernel source,
configured and built by the user). Modules are built against it exactly as against Debian's
headers (kharness.build); this module judges it first, one line per problem.

What a tree must have is what a Debian headers package has: a top Makefile, the kernel's
``.config``, and the release its modules' vermagic will carry. That release is
``include/generated/utsrelease.h``'s UTS_RELEASE (what vermagic.h reads): Debian's 5.10 and 6.1
headers ship an ``include/config/kernel.release`` that says the upstream version (6.1.176) instead,
so that file is only the fallback. ``Module.symvers`` is wanted, and required when the kernel has
CONFIG_MODVERSIONS (Debian's do): without it the module carries no symbol versions, and such a
kernel refuses to load it; without MODVERSIONS, modpost only warns that the symbols are undefined.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import UsageError
from kharness.kernels.store import HeadersBundle
from kharness.targets import TargetProfile

# The .config symbol that says a tree is for a profile's (kbuild ARCH, bits), and what to call it.
ARCH_CONFIG = {("x86", 64): "CONFIG_X86_64", ("arm64", 64): "CONFIG_ARM64", ("arm", 32): "CONFIG_ARM",
               ("powerpc", 64): "CONFIG_PPC64"}
ARCH_NAMES = {"CONFIG_X86_64": "x86_64", "CONFIG_ARM64": "arm64", "CONFIG_ARM": "32-bit arm",
              "CONFIG_PPC64": "64-bit powerpc"}
# ELF e_machine -> a name, for kbuild's host tools built for another machine than this host.
ELF_MACHINES = {3: "i386", 20: "powerpc", 21: "ppc64", 40: "arm", 62: "x86_64", 183: "aarch64"}
# The files whose content identifies the kernel a tree is for: a module built against the tree
# is rebuilt when one changes (the headers the compiler read are checked on their own).
STAMP_FILES = (".config", "Module.symvers", "include/generated/utsrelease.h", "include/config/kernel.release",
               "include/generated/autoconf.h", "Makefile")
_UTS_RE = re.compile(r'^#define UTS_RELEASE "([^"]+)"', re.M)
_INCLUDE_RE = re.compile(r"^\s*-?include\s+(/\S+)\s*$", re.M)
_CC_RE = re.compile(r'^CONFIG_CC_VERSION_TEXT="[^"]*?\b(\d+)\.\d+(?:\.\d+)?[^"]*"', re.M)


@dataclass(frozen=True)
class HostTree:
    path: Path          # resolved: what `make -C` gets
    given: Path         # as the user wrote it (what messages say)
    option: str         # how the user gave it: "--headers" or "--kernel-tree"
    release: str        # the release its modules' vermagic carries
    config: str         # its .config

    @property
    def source(self) -> str:
        """How the result names where the headers came from."""
        return "headers-dir" if self.option == "--headers" else "kernel-tree"

    @property
    def has_symvers(self) -> bool:
        return (self.path / "Module.symvers").is_file()

    def gcc_major(self) -> int | None:
        """The major version of the gcc the kernel was built with (its CONFIG_CC_VERSION_TEXT)."""
        m = _CC_RE.search(self.config)
        return int(m.group(1)) if m else None

    def headers(self) -> HeadersBundle:
        """The tree as the module build takes headers; not kharness's, so never sealed: its stamp
        keys the build instead."""
        return HeadersBundle(release=self.release, root=self.path, build_dir=self.path, stamp=stamp(self.path))


def stamp(path: Path) -> str:
    h = hashlib.sha256()
    for rel in STAMP_FILES:
        p = path / rel
        h.update(rel.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"-") + b"\0")
    return h.hexdigest()[:16]


def open_tree(given: Path, option: str) -> HostTree:
    """``given`` judged as a kbuild tree on its own (before any board is asked): it exists, is a
    configured, prepared kbuild tree, and its build tools run on this host."""
    if not given.exists():
        if given.is_symlink():   # /lib/modules/<release>/build unpacked or copied: a link to /usr/src
            raise UsageError(f"{option} {given} is a link to {given.readlink()}, which does not exist",
                             hint="give the directory it points to, where it is on this host")
        raise UsageError(f"{option} {given} does not exist")
    path = given.resolve()
    if not path.is_dir():
        raise UsageError(f"{option} {given} is not a directory", hint=_WHAT[option])
    if not (path / "Makefile").is_file():
        raise UsageError(f"{option} {given} is not a kernel build tree (it has no Makefile)", hint=_WHAT[option])
    if not (path / ".config").is_file():
        raise UsageError(f"{option} {given} has no .config (not a configured kernel tree)", hint=_WHAT[option])
    release = read_release(path)
    if not release:
        raise UsageError(f"{option} {given} is not prepared for building modules (no "
                         f"include/generated/utsrelease.h nor include/config/kernel.release)",
                         hint="build the kernel there, or at least `make modules_prepare`, with its ARCH")
    if not (path / "scripts").is_dir():
        raise UsageError(f"{option} {given} has no scripts/ (kbuild's tools; in Debian's headers a link to the "
                         f"linux-kbuild package)", hint="install the headers package with its linux-kbuild, or "
                                                        "build the kernel in that tree")
    _check_includes(path, given, option)
    _check_host_tools(path, given, option)
    tree = HostTree(path, given, option, release, (path / ".config").read_text(errors="replace"))
    if not tree.has_symvers and re.search(r"^CONFIG_MODVERSIONS=y$", tree.config, re.M):
        # Without it every symbol's CRC is missing, and a MODVERSIONS kernel refuses the module
        # ("no version for module_layout"): a load failure that is not the module's.
        raise UsageError(f"{option} {given} has no Module.symvers, and its kernel has CONFIG_MODVERSIONS=y: "
                         f"a module built against it would carry no symbol versions, which that kernel refuses",
                         hint="copy the Module.symvers of the board's kernel build there, or build on the board: "
                              "--build-on-remote")
    return tree


_WHAT = {"--headers": "give the directory of an unpacked linux-headers-<release> package, or "
                      "/lib/modules/<release>/build copied from the board: the one with the Makefile and .config",
         "--kernel-tree": "give the board kernel's source (or O=) tree, configured and built: the one with .config"}


def read_release(path: Path) -> str:
    """The release a module built against ``path`` gets in its vermagic ("" if none is said)."""
    uts = path / "include/generated/utsrelease.h"
    if uts.is_file():
        m = _UTS_RE.search(uts.read_text(errors="replace"))
        if m:
            return m.group(1)
    rel = path / "include/config/kernel.release"
    return rel.read_text(errors="replace").strip() if rel.is_file() else ""


def _check_includes(path: Path, given: Path, option: str) -> None:
    """A Debian headers package's Makefile includes its -common package by absolute path
    (/usr/src/linux-headers-<r>-common/Makefile): one unpacked elsewhere cannot build until it is
    there. Said now, not as make's 'No such file' after connecting to the board."""
    text = (path / "Makefile").read_text(errors="replace")
    for inc in _INCLUDE_RE.findall(text):
        if "$" not in inc and not Path(inc).exists():
            raise UsageError(f"{option} {given}: its Makefile includes {inc}, which does not exist on this host",
                             hint="install the package with apt install linux-headers-<release>, or unpack its "
                                  "-common package where that path says")


def _check_host_tools(path: Path, given: Path, option: str) -> None:
    """kbuild runs the tree's own fixdep and modpost on the host: built on a board (a build tree
    copied from it) they are for its machine, and the build would stop at 'Exec format error'."""
    host = _elf_machine(Path("/bin/sh"))
    for rel in ("scripts/basic/fixdep", "scripts/mod/modpost"):
        tool = _elf_machine(path / rel)
        if tool is not None and host is not None and tool != host:
            raise UsageError(f"{option} {given}: its {rel} is a program for {_machine_name(tool)}, not for "
                             f"this host ({_machine_name(host)})",
                             hint="rebuild its tools on this host (make scripts in the kernel's source), or build "
                                  "on the board: --build-on-remote")


def _machine_name(e_machine: int) -> str:
    return ELF_MACHINES.get(e_machine, f"ELF machine {e_machine}")


def _elf_machine(path: Path) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def check_for_board(tree: HostTree, release: str, profile: TargetProfile) -> None:
    """The tree must be the board's kernel's: its release is ``release`` (``uname -r``) and its
    .config is for the board's architecture and byte order."""
    if tree.release != release:
        raise UsageError(f"{tree.option} {tree.given} is for {tree.release}, the board runs {release}",
                         hint=f"give the tree of {release}, or build on the board against its own "
                              f"headers: --build-on-remote")
    why = arch_mismatch(tree.config, profile)
    if why:
        raise UsageError(f"{tree.option} {tree.given} is for another architecture: {why}",
                         hint="give the tree of the board's own kernel, or build on the board: --build-on-remote")


def arch_mismatch(config: str, profile: TargetProfile) -> str | None:
    """Why a tree with this .config cannot build for ``profile`` (None: it can)."""
    def on(sym: str) -> bool:
        return re.search(rf"^{sym}=y$", config, re.M) is not None

    want = ARCH_CONFIG.get((profile.kernel_arch, profile.bits))
    if want and not on(want):
        has = next((ARCH_NAMES[s] for s in ARCH_NAMES if on(s)), None)
        return (f"its .config is for {has}, " if has else f"its .config lacks {want}=y, ") + \
            f"the board is {profile.name}"
    wrong = "CONFIG_CPU_BIG_ENDIAN" if profile.endian == "little" else "CONFIG_CPU_LITTLE_ENDIAN"
    if on(wrong):
        return f"its .config sets {wrong}=y, the board is {profile.endian}-endian {profile.name}"
    return None


__all__ = ["HostTree", "arch_mismatch", "check_for_board", "open_tree", "read_release"]
