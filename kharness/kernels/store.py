"""The kernel cache: a kernel to boot and headers to build against, unpacked once per content.

Layout under the cache directory::

    debs/<sha256>.deb                        verified downloads, named by their hash
    kernels/<release>-<key>/                 what the guest needs from linux-image
    headers/<release>-<key>/usr/src/...      what kbuild needs, with absolute paths redirected

``key`` is derived from the SHA256s of the packages (and, for kernels, the guest modules asked
for), so a new Debian upload or another module set is a new entry and an old one is never
modified. An entry is complete once its ``.complete`` marker exists; entries are assembled in a
staging directory and renamed into place.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import lzma
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from kharness import seal, ui
from kharness.debian.deb import extract_deb
from kharness.debian.pool import fetch_pkg
from kharness.elf import depends, load_order, read_modinfo
from kharness.errors import InfraError
from kharness.kernels.resolve import KernelSpec
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir

COMPLETE = seal.MARKER


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class KernelBundle:
    """A kernel ready to boot: the image file, its modules, its device trees."""

    release: str
    root: Path
    kernel: Path                 # what QEMU's -kernel gets
    modules_dir: Path            # .../lib/modules/<release>
    guest_modules: tuple[Path, ...]  # the requested modules and their dependencies, load order
    dtb_dir: Path | None


@dataclass(frozen=True)
class HeadersBundle:
    release: str
    root: Path
    build_dir: Path              # what `make -C` gets
    # "" for headers kharness unpacked (sealed, checked before use); for a tree the user gave
    # (kharness.kernels.hosttree), a digest of the files that say which kernel it is: module
    # builds are keyed by it, and never check or repair the tree as a cache entry.
    stamp: str = ""


# --- kernels -------------------------------------------------------------------------------

_MAGICS = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
)


def extract_vmlinux(bzimage: bytes) -> bytes:
    """The uncompressed ELF ``vmlinux`` inside an x86 bzImage (it boots through PVH, skipping
    the slow decompressor). Tries each compressed stream the image contains."""
    import zstandard   # here, as in _decompress_module: a cached kernel needs no decompressor

    for magic, kind in _MAGICS:
        start = bzimage.find(magic)
        while start != -1:
            try:
                if kind == "xz":
                    out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(bzimage[start:])
                elif kind == "zstd":
                    out = zstandard.ZstdDecompressor().decompressobj().decompress(bzimage[start:])
                else:
                    out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(bzimage[start:])
                if out[:4] == b"\x7fELF":
                    return out
            except (lzma.LZMAError, zstandard.ZstdError, zlib.error):
                pass
            start = bzimage.find(magic, start + 1)
    raise InfraError("no compressed ELF vmlinux found in the bzImage")


def _write_file(path: Path, data: bytes) -> None:
    """``path`` holding ``data``, written beside it and renamed over it: a link standing at ``path``
    (from a package) is replaced, never followed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decompress_module(path: Path) -> Path:
    """``foo.ko.xz``/``.ko.zst``/``.ko.gz`` -> ``foo.ko`` (busybox insmod cannot read zstd)."""
    name = path.name
    data = path.read_bytes()
    if name.endswith(".ko.xz"):
        data = lzma.decompress(data)
    elif name.endswith(".ko.zst"):
        # Here, not at the top: only unpacking a kernel's modules needs it, and zstandard (with
        # the platform module it imports) would cost every run its import.
        import zstandard

        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    elif name.endswith(".ko.gz"):
        data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
    else:
        return path
    out = path.with_name(name.rsplit(".", 1)[0])
    _write_file(out, data)
    path.unlink()
    return out


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1].split(".ko")[0]
    return base.replace("-", "_")


def ensure_kernel(spec: KernelSpec, *, boot: str, want_modules: tuple[str, ...] = ()) -> KernelBundle:
    key = _key(*(p.sha256 for p in spec.image_pkgs), boot, *want_modules)
    final = cache_dir() / "kernels" / f"{spec.release}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "kernel"):
            # From 7.2 the modules are a separate (large) package: fetch it only when the
            # guest needs some of them.
            debs = [fetch_pkg(p) for p in spec.image_pkgs
                    if want_modules or not p.name.startswith("linux-modules-")]
            with staging_dir(final) as tmp, ui.step(f"unpacking kernel {spec.release}"):
                _assemble_kernel(spec, debs, tmp, boot, want_modules)
                seal.seal(tmp, spec.to_dict())
    meta = json.loads((final / "bundle.json").read_text())
    return KernelBundle(
        release=spec.release, root=final, kernel=final / meta["kernel"],
        modules_dir=final / meta["modules_dir"],
        guest_modules=tuple(final / m for m in meta["guest_modules"]),
        dtb_dir=(final / meta["dtb_dir"]) if meta.get("dtb_dir") else None,
    )


def _assemble_kernel(spec: KernelSpec, debs: list[Path], root: Path, boot: str,
                     want: tuple[str, ...]) -> None:
    rel = re.escape(spec.release)
    keep = re.compile(
        rf"^(boot/(vmlinu[xz]|config|System\.map)-{rel}"
        rf"|(usr/)?lib/modules/{rel}/(vmlinu[xz]|modules\.[a-z.]+)"
        rf"|usr/lib/linux-image-{rel}/.*"
        rf"|(usr/)?lib/modules/{rel}/dtb/.*)$"
    )
    for deb in debs:
        extract_deb(deb, root, lambda p: bool(keep.match(p)))
    kernel = next((p for p in (root / f"boot/vmlinuz-{spec.release}",
                                root / f"boot/vmlinux-{spec.release}",   # ppc64el: an ELF vmlinux
                                root / f"usr/lib/modules/{spec.release}/vmlinuz",
                                root / f"lib/modules/{spec.release}/vmlinuz") if p.exists()), None)
    if kernel is None:
        raise InfraError(f"no kernel image found in the packages of {spec.release}")
    if boot == "pvh-vmlinux":
        vmlinux = root / "vmlinux"
        _write_file(vmlinux, extract_vmlinux(kernel.read_bytes()))
        kernel = vmlinux
    mods_rel = next((d for d in (f"usr/lib/modules/{spec.release}", f"lib/modules/{spec.release}")
                     if (root / d).is_dir()), f"lib/modules/{spec.release}")
    (root / mods_rel).mkdir(parents=True, exist_ok=True)
    # Guest modules and everything they depend on: extract, read `depends=`, repeat.
    found: dict[str, Path] = {}
    # A module the profile asks for may be built into this kernel (virtio_console is =m in 6.1's
    # arm64 kernel, =y from 6.12): then there is nothing to load.
    builtin_list = root / mods_rel / "modules.builtin"
    builtin = {_module_name(line.strip()) for line in builtin_list.read_text().splitlines()} \
        if builtin_list.exists() else set()
    pending = set(want) - builtin
    while pending:
        names = set(pending)
        pats = [re.compile(rf"^(usr/)?lib/modules/{rel}/kernel/.*/{re.escape(n)}\.ko(\.(xz|zst|gz))?$".replace("_", "[_-]"))
                for n in names]
        for deb in debs:
            for p in extract_deb(deb, root, lambda p: any(r.match(p) for r in pats)):
                found[_module_name(p)] = _decompress_module(root / p)
        missing = names - set(found)
        if missing:
            raise InfraError(f"kernel {spec.release} has no module(s) {sorted(missing)} "
                             "(built in, or not shipped): fix the target profile's guest_modules")
        pending = set()
        for n in names:
            for dep in depends(read_modinfo(found[n])):
                if dep not in found and dep not in builtin:
                    pending.add(dep)
    order = load_order(sorted(found), {n: depends(read_modinfo(p)) for n, p in found.items()})
    # Device trees: usr/lib/linux-image-<rel>/ up to 6.12, <modules dir>/dtb/ from 7.2.
    dtb_dir = next((d for d in (f"usr/lib/linux-image-{spec.release}", f"{mods_rel}/dtb")
                    if (root / d).is_dir()), f"usr/lib/linux-image-{spec.release}")
    (root / "bundle.json").write_text(json.dumps({
        "kernel": str(kernel.relative_to(root)),
        "modules_dir": mods_rel,
        "guest_modules": [str(found[n].relative_to(root)) for n in order],
        "dtb_dir": dtb_dir if (root / dtb_dir).is_dir() else None,
    }, indent=1))


# --- headers -------------------------------------------------------------------------------

def ensure_headers(spec: KernelSpec) -> HeadersBundle:
    key = _key(*(p.sha256 for p in spec.header_pkgs))
    final = cache_dir() / "headers" / f"{spec.release}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        # 16,000 files: a run looks at the seal; a build (kbuild.run_kbuild) at every file.
        if seal.problem(final, shallow=True) is not None:
            debs = [fetch_pkg(p) for p in spec.header_pkgs]
            with staging_dir(final) as tmp, ui.step(f"unpacking headers {spec.release}"):
                for deb in debs:
                    # Only usr/: ./lib from a headers package holds absolute `build` links
                    # and would shadow a merged-/usr layout.
                    extract_deb(deb, tmp, lambda p: p.startswith("usr/") and not p.startswith("usr/share/doc"))
                _redirect_usr_src(tmp, final, spec.release)
                seal.seal(tmp, spec.to_dict())
    return HeadersBundle(release=spec.release, root=final,
                         build_dir=final / "usr/src" / f"linux-headers-{spec.release}")


def _redirect_usr_src(tmp: Path, final: Path, release: str) -> None:
    """The headers' top Makefile includes ``/usr/src/linux-headers-*-common/Makefile`` by absolute
    path (and from 7.2 sets ``KBUILD_OUTPUT=/usr/src/...``): point them at the unpack location
    (``final``, where the staging directory is about to be renamed)."""
    top = tmp / "usr/src" / f"linux-headers-{release}"
    if not top.is_dir():
        raise InfraError(f"headers package for {release} has no usr/src/linux-headers-{release}")
    for f in top.iterdir():
        if f.is_file() and not f.is_symlink() and (f.name == "Makefile" or fnmatch.fnmatch(f.name, "*.mk")):
            text = f.read_text(errors="replace")
            new = re.sub(r"(?<![\w/])/usr/src/", f"{final}/usr/src/", text)
            if new != text:
                _write_file(f, new.encode())
