"""Kernels kharness builds itself: from Debian's ``linux-source-*`` or from the user's own tree.

Used where Debian ships no kernel (the big-endian ppc64 target: Debian has no ppc64 port in its
main archive) and by kernel developers who test modules against their own tree. The build is
``tinyconfig`` + the target's config fragment (kept in ``images/kernel-configs``) + the user's
fragments, ``olddefconfig``, then ``make vmlinux modules``. It is cached by the content of the
source package (or, for a user tree, its path and HEAD), the fragments and the compiler.
The build tree (``O=``) is then the headers tree modules are built against.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from kharness import hostarch, proc, seal, ui
from kharness.debian.deb import extract_deb
from kharness.debian.index import load_index
from kharness.debian.pool import fetch_pkg
from kharness.errors import InfraError, UsageError
from kharness.kernels.debug import DEBUG_LOCALVERSION, debug_fragments
from kharness.kernels.resolve import KernelSpec, source_suites
from kharness.kernels.store import HeadersBundle, KernelBundle
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir, data_dir
from kharness.targets import TargetProfile

BUILD_TIMEOUT = 3600    # `make vmlinux modules`; past it make and every compiler it started are killed
CONFIG_TIMEOUT = 600    # each configuration step, and unpacking the source
LOCALVERSION = "-kharness"

# What QEMU's -kernel boots, per ARCH, in a kernel kharness built: x86 and powerpc boot the ELF
# vmlinux (x86 through its PVH entry, as Debian's kernels are booted here); arm64 needs the Image.
_BOOT_IMAGES = {"x86": "vmlinux", "powerpc": "vmlinux", "arm64": "arch/arm64/boot/Image",
                "arm": "arch/arm/boot/zImage"}


def boot_image(profile: TargetProfile, debug: tuple[str, ...] = ()) -> str:
    if profile.kernel_arch == "x86" and "kasan" in debug:
        # The PVH entry runs C code (xen_prepare_pvh, memcmp) before KASAN's shadow exists, and a
        # KASAN kernel dies there (6.1). The bzImage enters through the normal boot path; it is
        # LZ4-compressed (see the x86_64 fragment), which costs little to unpack under TCG.
        return "arch/x86/boot/bzImage"
    return _BOOT_IMAGES.get(profile.kernel_arch, "vmlinux")


@dataclass(frozen=True)
class SourceBuild:
    release: str
    out: Path          # the O= build tree: vmlinux, Module.symvers, and the headers for M= builds
    source: Path
    config_fragments: tuple[str, ...]
    origin: dict       # what it was built from (package record, or the user's tree)
    build_seconds: float | None = None   # how long `make vmlinux modules` took, once
    boot: str | None = None              # what QEMU boots, relative to out (see boot_image)

    def kernel_bundle(self, profile: TargetProfile) -> KernelBundle:
        return KernelBundle(release=self.release, root=self.out, kernel=self.out / (self.boot or boot_image(profile)),
                            modules_dir=self.out, guest_modules=(), dtb_dir=None)

    def headers_bundle(self) -> HeadersBundle:
        return HeadersBundle(release=self.release, root=self.out.parent, build_dir=self.out)


def _fragment_paths(profile: TargetProfile, extra: tuple[Path, ...]) -> list[Path]:
    paths = []
    if profile.config_fragment:
        paths.append(data_dir("images") / profile.config_fragment)
    for p in extra:
        if not p.is_file():
            raise UsageError(f"config fragment {p} does not exist")
        paths.append(p)
    return paths


def _make(src: Path, out: Path, profile: TargetProfile, *args: str, log: Path, timeout: float = BUILD_TIMEOUT,
          localversion: str = LOCALVERSION) -> str:
    cmd = ["make", "-C", str(src), f"O={out}", f"ARCH={profile.kernel_arch}",
           f"CROSS_COMPILE={profile.cross_compile}", f"LOCALVERSION={localversion}", *args]
    env = dict(os.environ, LC_ALL="C")
    env.pop("MAKEFLAGS", None)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            p = proc.run(cmd, timeout=timeout, env=env, merge_stderr=True,
                         what=f"kernel build step `make {' '.join(args)}` (log: {log})")
        except proc.ProcessTimeout as e:
            f.write(e.stdout + "\n[kharness: stopped: " + e.message + "]\n")
            raise
        f.write(p.stdout)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.strip().splitlines()[-12:])
        raise InfraError(f"kernel build step `make {' '.join(args)}` failed (log: {log}):\n{tail}")
    return p.stdout


def _check_fragment(config: Path, fragments: list[Path]) -> None:
    """Every option a fragment sets must survive olddefconfig (a dependency can silently drop one)."""
    have = config.read_text()
    lost = []
    for frag in fragments:
        for line in frag.read_text().splitlines():
            m = re.match(r"^(CONFIG_\w+)=(.*)$", line.strip())
            if not m:
                continue
            opt, val = m.groups()
            if val == "n":  # "=n" is written as "# CONFIG_X is not set" (or left out)
                if re.search(rf"^{opt}=", have, re.M):
                    lost.append(f"{opt}=n")
            elif not re.search(rf"^{re.escape(opt)}={re.escape(val)}$", have, re.M):
                lost.append(f"{opt}={val}")
    if lost:
        raise InfraError(f"the kernel config lost {', '.join(lost[:8])} (unmet dependencies)",
                         hint="fix the config fragment")


def build_tree(profile: TargetProfile, src: Path, key: str, fragments: list[Path], origin: dict,
               localversion: str = LOCALVERSION, what: str = "kernel", boot: str | None = None) -> SourceBuild:
    """Configure and build a kernel tree (cached under ``kernel-builds/<target>-<key>``)."""
    final = cache_dir() / "kernel-builds" / f"{profile.name}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "kernel build", adopt=lambda: _seal_build(final)):
            if shutil.which(f"{profile.cross_compile}gcc") is None:
                raise InfraError(f"{profile.cross_compile}gcc is not installed", hint="run `kharness doctor --install`")
            with staging_dir(final) as tmp:
                out = tmp / "out"
                out.mkdir()
                log = tmp / "build.log"
                jobs = f"-j{os.cpu_count() or 2}"
                lv = {"localversion": localversion}
                with ui.step(f"configuring the {profile.name} {what}"):
                    _make(src, out, profile, "tinyconfig", log=log, timeout=CONFIG_TIMEOUT, **lv)
                    merge = src / "scripts/kconfig/merge_config.sh"
                    p = proc.run([str(merge), "-m", "-O", str(out), str(out / ".config"), *map(str, fragments)],
                                 timeout=CONFIG_TIMEOUT, what="merge_config.sh",
                                 env=dict(os.environ, ARCH=profile.kernel_arch, CROSS_COMPILE=profile.cross_compile))
                    if p.returncode != 0:
                        raise InfraError(f"merge_config.sh failed: {p.stderr.strip()[-400:]}")
                    _make(src, out, profile, "olddefconfig", log=log, timeout=CONFIG_TIMEOUT, **lv)
                    _check_fragment(out / ".config", fragments)
                boot = boot or boot_image(profile)
                targets = ["vmlinux", "modules"]
                if boot != "vmlinux":
                    targets.append(Path(boot).name)
                t0 = time.monotonic()
                with ui.step(f"building the {profile.name} {what} (minutes; cached afterwards)"):
                    _make(src, out, profile, jobs, *targets, log=log, **lv)
                seconds = time.monotonic() - t0
                release = _make(src, out, profile, "-s", "kernelrelease", log=log, timeout=CONFIG_TIMEOUT,
                                **lv).strip().splitlines()[-1]
                # The build tree must not point at the staging directory once it is renamed.
                (tmp / "build.json").write_text(json.dumps({"release": release, "source": str(src),
                                                            "origin": origin, "build_seconds": round(seconds, 1),
                                                            "boot": boot,
                                                            "fragments": [str(f) for f in fragments]}, indent=1))
            # O= trees record their own path in a few generated files: fix them up after the move,
            # then seal what a run uses (the tree has 10^4 files; the kernel build is what matters).
            _relocate(final, tmp_name_prefix=f".{final.name}.")
            _seal_build(final)
    meta = json.loads((final / "build.json").read_text())
    return SourceBuild(meta["release"], final / "out", Path(meta["source"]), tuple(meta["fragments"]),
                       meta["origin"], meta.get("build_seconds"), meta.get("boot"))


def _seal_build(final: Path) -> None:
    boot = json.loads((final / "build.json").read_text()).get("boot") or "vmlinux"
    kept = ["build.json", "out/.config", "out/vmlinux", "out/Module.symvers", f"out/{boot}"]
    seal.seal(final, only=sorted({k for k in kept if (final / k).is_file()}))


def _seal_source(final: Path, meta: dict) -> None:
    # 80,000 files: seal the top-level ones (a damaged file deeper fails the kernel build).
    seal.seal(final, meta, only=sorted(f"src/{p.name}" for p in (final / "src").iterdir()
                                       if p.is_file() and not p.is_symlink()))


def _relocate(final: Path, tmp_name_prefix: str) -> None:
    out = final / "out"
    pat = re.compile(re.escape(str(final.parent)) + r"/" + re.escape(tmp_name_prefix) + r"[^/\s]*?\.tmp")
    for f in (out / "Makefile", out / "Module.symvers", out / "modules.order"):
        if f.is_file():
            text = f.read_text(errors="replace")
            new = pat.sub(str(final), text)
            if new != text:
                f.write_text(new)


def debian_source(profile: TargetProfile, series: str, debug: tuple[str, ...] = ()) -> SourceBuild:
    """Build ``profile``'s kernel from Debian's ``linux-source-<series>`` (with the ``debug``
    checkers of :mod:`kharness.kernels.debug` enabled, if any)."""
    if series not in profile.series:
        raise UsageError(f"kernel series {series} is not available for target {profile.name}",
                         hint=f"available series: {', '.join(profile.series)}")
    pkg = source_package(series)
    fragments = _fragment_paths(profile, ()) + debug_fragments(profile, debug)
    parts = [pkg.sha256, [f.read_text() for f in fragments], profile.cross_compile, profile.kernel_arch]
    if debug:
        parts.append(["debug", *debug])   # (without debug the key is what it always was)
    key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    src = _unpack_source(pkg)
    origin = {"package": pkg.to_dict()}
    if debug:
        return build_tree(profile, src, f"{series}-debug-{key}", fragments, dict(origin, debug=list(debug)),
                          localversion=DEBUG_LOCALVERSION, what=f"debug kernel ({', '.join(debug)})",
                          boot=boot_image(profile, debug))
    return build_tree(profile, src, f"{series}-{key}", fragments, origin)


def source_package(series: str):
    """The ``linux-source-<series>`` package record (from the first suite that ships it)."""
    for suite in source_suites(series):
        # linux-source-* is Architecture: all, in every architecture's index: the host's is read anyway.
        pkg = load_index(suite, hostarch.debian_arch()).get(f"linux-source-{series}")
        if pkg:
            return pkg
    raise UsageError(f"linux-source-{series} is not in Debian's archive",
                     hint="kharness kernels lists the series it offers")


def source_tree(series: str) -> Path:
    """Debian's kernel source for a series, downloaded, verified and unpacked once (cached)."""
    return _unpack_source(source_package(series))


def user_tree(profile: TargetProfile, tree: Path, extra: tuple[Path, ...] = (),
              debug: tuple[str, ...] = ()) -> SourceBuild:
    tree = tree.resolve()
    if not (tree / "Makefile").is_file() or not (tree / "Kconfig").is_file():
        raise UsageError(f"{tree} is not a kernel source tree (no Makefile and Kconfig)")
    fragments = _fragment_paths(profile, extra) + debug_fragments(profile, debug)
    head = ""
    if (tree / ".git").exists():
        head = proc.run(["git", "-C", str(tree), "rev-parse", "HEAD"], timeout=60,
                        what=f"git rev-parse HEAD in {tree}").stdout.strip()
    key = hashlib.sha256(json.dumps([str(tree), head, [f.read_text() for f in fragments],
                                     profile.cross_compile]).encode()).hexdigest()[:12]
    origin = {"tree": str(tree), "git_head": head}
    if debug:
        return build_tree(profile, tree, f"tree-debug-{key}", fragments, dict(origin, debug=list(debug)),
                          localversion=DEBUG_LOCALVERSION, what=f"debug kernel ({', '.join(debug)})",
                          boot=boot_image(profile, debug))
    return build_tree(profile, tree, f"tree-{key}", fragments, origin)


def _unpack_source(pkg) -> Path:
    final = cache_dir() / "linux-src" / pkg.sha256[:16]
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "kernel source", adopt=lambda: _seal_source(final, pkg.to_dict())):
            deb = fetch_pkg(pkg)
            with staging_dir(final) as tmp, ui.step(f"unpacking {pkg.name} {pkg.version}"):
                written = extract_deb(deb, tmp, lambda p: p.startswith("usr/src/") and p.endswith((".tar.xz", ".tar.bz2")))
                tarball = next((tmp / w for w in written if "linux-source" in w), None)
                if tarball is None:
                    raise InfraError(f"{pkg.name} holds no source tarball")
                # GNU tar is several times faster than tarfile for a 1 GB tree; the tarball comes from
                # a verified package, and --no-same-owner/-permissions keep it tame.
                p = proc.run(["tar", "-xf", str(tarball), "-C", str(tmp), "--no-same-owner",
                              "--no-same-permissions"], timeout=CONFIG_TIMEOUT, what=f"unpacking {tarball.name}")
                if p.returncode != 0:
                    raise InfraError(f"cannot unpack {tarball.name}: {p.stderr.strip()[-300:]}")
                tarball.unlink()
                shutil.rmtree(tmp / "usr", ignore_errors=True)
                top = next(d for d in tmp.iterdir() if d.is_dir() and d.name.startswith("linux-source"))
                top.rename(tmp / "src")
                _seal_source(tmp, pkg.to_dict())
    return final / "src"


def source_spec(build: SourceBuild, series: str) -> KernelSpec:
    """A KernelSpec describing a self-built kernel, for results and reproducers."""
    from kharness.debian.index import Pkg
    pkg = build.origin.get("package")
    pkgs = (Pkg(**{k: pkg[k] for k in ("name", "version", "arch", "filename", "size", "sha256", "suite")},
                depends=""),) if pkg else ()
    return KernelSpec(release=build.release, series=series, suite=pkg["suite"] if pkg else "user-tree",
                      version=pkg["version"] if pkg else build.origin.get("git_head", ""),
                      image_pkgs=pkgs, header_pkgs=(), gcc=None)
