"""The cache entry of a kernel's full module tree, and the files of a chain to put in the guest.

Layout under the cache directory::

    modtrees/<release>-<key>/lib/modules/<release>/...   every module the packages ship, and
                                                         the index files depmod wrote for them
    modules-unzstd/<sha256>.ko                            zstd modules, decompressed once

``key`` comes from the SHA256s of the image packages (7.2's linux-modules, linux-base... too),
so a new upload is a new entry. The entry is unpacked in a staging directory, ``depmod -b`` runs
there (the packages ship no modules.dep; the host's depmod reads any arch), and it is sealed
(:mod:`kharness.seal`) before it is renamed into place. A kernel kharness built has no packages:
its tree is read from the build directory (:func:`build_tree`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import zstandard

from kharness import proc, seal, ui
from kharness.debian.deb import extract_deb
from kharness.debian.pool import fetch_pkg
from kharness.elf import depends, read_modinfo
from kharness.errors import InfraError
from kharness.kernels.modtree import ChainModule, ModuleTree, module_name, normalise, normalise_alias, \
    parse_builtin_modinfo, parse_modules_builtin, parse_modules_softdep, read_tree
from kharness.kernels.resolve import KernelSpec
from kharness.kernels.symbols import read_symvers
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir

DEPMOD_TIMEOUT = 300.0   # depmod on 4,000 modules takes about half a second
# Bumped when the entry's layout changes: an older entry is then a different key, never misread.
_LAYOUT = "modtree-1"


def _key(spec: KernelSpec) -> str:
    return hashlib.sha256("\n".join([_LAYOUT, *(p.sha256 for p in spec.image_pkgs)]).encode()).hexdigest()[:12]


def tree_label(series: str, target: str | None) -> str:
    """``6.1 for rpi2``: how the error messages name a kernel."""
    return f"{series} for {target}" if target else series


def modules_dep(spec: KernelSpec, target: str | None = None, symvers: Path | None = None) -> ModuleTree:
    """The full module tree of a Debian kernel, unpacked and depmod'ed once per package content.
    ``symvers``: the headers' ``Module.symvers`` (who exports what, GPL-only or not, with which
    CRC), for explaining unknown symbols; the headers' ``build_dir`` holds it."""
    return with_symvers(read_tree(modules_dir(spec), tree_label(spec.series, target)), symvers)


def modules_dir(spec: KernelSpec) -> Path:
    """``.../lib/modules/<release>`` of the kernel's full module tree, unpacked and depmod'ed
    once per package content (without reading its indexes: :func:`modules_dep` does)."""
    final = cache_dir() / "modtrees" / f"{spec.release}-{_key(spec)}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "module tree"):
            debs = [fetch_pkg(p) for p in spec.image_pkgs]
            with staging_dir(final) as tmp, ui.step(f"unpacking the modules of {spec.release}"):
                _assemble(spec.release, debs, tmp)
                seal.seal(tmp, spec.to_dict())
    return final / "lib/modules" / spec.release


def tree_marker(moddir: Path) -> bytes:
    """What names the content of the tree at ``moddir`` (from :func:`modules_dir`): its entry's
    seal, which records the packages it was unpacked from."""
    marker = moddir.parent.parent.parent / seal.MARKER
    return marker.read_bytes() if marker.is_file() else str(moddir).encode()


def with_symvers(tree: ModuleTree, symvers: Path | None) -> ModuleTree:
    """``tree`` knowing the exports ``symvers`` (a Module.symvers file, or a directory holding one) lists."""
    if symvers is None:
        return tree
    path = symvers / "Module.symvers" if symvers.is_dir() else symvers
    return dataclasses.replace(tree, symvers_file=path) if path.is_file() else tree


def _assemble(release: str, debs: Iterable[Path], root: Path) -> None:
    rel = re.escape(release)
    # Everything under the modules directory but the kernel image and device trees (7.2 keeps
    # vmlinuz and dtb/ there): modules, modules.builtin(.modinfo), modules.order.
    keep = re.compile(rf"^(usr/)?lib/modules/{rel}/(?!vmlinu[xz]$|dtb/).+$")
    for deb in debs:
        extract_deb(deb, root, lambda p: bool(keep.match(p)))
    moddir = root / "lib/modules" / release
    merged = root / "usr/lib/modules" / release
    if merged.is_dir():   # merged /usr (7.2): one place, where the host's depmod -b looks
        if moddir.exists():
            raise InfraError(f"the packages of {release} ship modules under both /lib and /usr/lib")
        moddir.parent.mkdir(parents=True, exist_ok=True)
        merged.rename(moddir)
        shutil.rmtree(root / "usr")
    if not moddir.is_dir():
        raise InfraError(f"the packages of {release} ship no lib/modules/{release}")
    depmod = shutil.which("depmod") or next((p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.path.exists(p)), None)
    if depmod is None:
        raise InfraError("depmod is not installed", hint="install kmod (apt-get install kmod)")
    res = proc.run([depmod, "-b", str(root), release], timeout=DEPMOD_TIMEOUT, what=f"depmod for {release}")
    if res.returncode != 0 or not (moddir / "modules.dep").is_file():
        raise InfraError(f"depmod failed for {release}: {(res.stderr or res.stdout).strip()[:300]}")


def build_tree(out: Path, release: str, series: str, target: str | None = None) -> ModuleTree:
    """The module tree of a kernel kharness built (``O=`` directory ``out``): the modules
    ``modules.order`` lists that were built, their dependencies and aliases from their modinfo,
    built-in ones from ``modules.builtin``, exports from ``Module.symvers``. No depmod: such
    kernels (tinyconfig and a fragment) build a handful of modules at most."""
    def text(name: str) -> str:
        p = out / name
        return p.read_text(errors="replace") if p.is_file() else ""

    paths: dict[str, str] = {}
    deps: dict[str, tuple[str, ...]] = {}
    aliases: list[tuple[str, str]] = []
    softdeps: dict = {}
    for line in text("modules.order").split():
        ko = line.removesuffix(".o") + ("" if line.endswith(".ko") else ".ko")
        if not (out / ko).is_file():
            continue
        name = module_name(ko)
        info = read_modinfo(out / ko)
        paths[name] = ko
        deps[name] = tuple(normalise(d) for d in depends(info))
        aliases += [(normalise_alias(a), name) for a in info.get("alias", [])]
        softdeps.update(parse_modules_softdep("".join(f"softdep {name} {s}\n" for s in info.get("softdep", []))))
    info_file = out / "modules.builtin.modinfo"
    symvers = read_symvers(text("Module.symvers"))
    return ModuleTree(
        label=tree_label(series, target), root=out, paths=paths, deps=deps, extra_aliases=tuple(aliases),
        softdeps=softdeps, builtin=frozenset(parse_modules_builtin(text("modules.builtin"))),
        builtin_aliases=tuple(parse_builtin_modinfo(info_file.read_bytes()) if info_file.is_file() else ()),
        extra_exports={s: e.module for s, e in symvers.items() if e.module != "vmlinux"},
        extra_symvers=symvers)


# --- what goes into the guest ---------------------------------------------------------------------

def payload_paths(chain: Iterable[ChainModule]) -> dict[str, Path]:
    """``{guest file name: file on the host}`` for the chain's modules, zstd ones decompressed
    (once per content: busybox insmod reads .ko, .ko.gz and .ko.xz, not .ko.zst)."""
    out: dict[str, Path] = {}
    for m in chain:
        if m.source is None:
            raise InfraError(f"no file for kernel module {m.name} ({m.path})")
        out[m.guest_file] = _unzstd(m.source) if m.source.name.endswith(".zst") else m.source
    return out


def payload_for(chain: Iterable[ChainModule]) -> dict[str, bytes]:
    """``{guest file name: bytes}`` for the chain's modules (see :func:`payload_paths`)."""
    return {name: path.read_bytes() for name, path in payload_paths(chain).items()}


def _unzstd(src: Path) -> Path:
    digest = seal.file_sha256(src)
    dest = cache_dir() / "modules-unzstd" / f"{digest}.ko"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with src.open("rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f).read()
    except zstandard.ZstdError as e:
        raise InfraError(f"{src.name} is not a readable zstd file: {e}") from e
    if data[:4] != b"\x7fELF":
        raise InfraError(f"{src.name} does not decompress to a kernel module")
    # Written beside and renamed: a concurrent run sees the whole file or none.
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest
