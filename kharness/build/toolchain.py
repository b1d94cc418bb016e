"""Which compiler builds modules for a kernel.

Debian's headers name the gcc their kernel was built with (``gcc-12``, ``linux-compiler-gcc-10-x86``).
kharness uses that exact gcc when the host has it; an older one is replaced by the host's gcc
(5.10's gcc-10 -> gcc-12 works: the flags it uses are a subset). A newer one than the host has
cannot be replaced (trixie's 6.12 uses gcc-14 flags, sid's 7.2 tools need a newer glibc).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from kharness.build import buildenv
from kharness.debian.index import dep_names
from kharness.errors import InfraError
from kharness.hostcc import cc_major, cc_version
from kharness.kernels.resolve import KernelSpec
from kharness.targets import TargetProfile


@dataclass(frozen=True)
class Toolchain:
    arch: str                 # ARCH=
    cross_compile: str        # CROSS_COMPILE=
    cc: str                   # CC=
    version: str              # first line of `cc --version`
    note: str = ""            # why this compiler, when it is not the one the kernel asked for
    sysroot: Path | None = None   # build inside this Debian root (see buildenv), None: the host

    debian_arch: str = ""         # the target's Debian architecture

    def make_vars(self) -> list[str]:
        out = [f"ARCH={self.arch}", f"CC={self.cc}"]
        if self.cross_compile:
            triplet = self.cross_compile.rstrip("-")
            # From 6.12 Debian's headers derive CROSS_COMPILE from dpkg-architecture's view of
            # build and host; say what the host of this build is.
            out += [f"CROSS_COMPILE={self.cross_compile}", f"DEB_HOST_ARCH={self.debian_arch}",
                    f"DEB_HOST_GNU_TYPE={triplet}"]
        return out


def pick_toolchain(profile: TargetProfile, spec: KernelSpec) -> Toolchain:
    """The compiler for ``spec``: the host's when it can build it, else the kernel's own suite's
    inside a build environment."""
    wanted_gcc = spec.gcc
    prefix = profile.cross_compile
    default = f"{prefix}gcc"
    want = int(wanted_gcc.split("-")[1]) if wanted_gcc else None
    have = cc_major(default) if shutil.which(default) else None
    if want is not None and (have is None or have < want) and not shutil.which(f"{prefix}{wanted_gcc}"):
        return _sysroot_toolchain(profile, spec, wanted_gcc)
    if shutil.which(default) is None:
        raise InfraError(f"{default} is not installed (needed to build for {profile.name})",
                         hint="run `kharness doctor --install` to install the cross compilers")
    if wanted_gcc:
        exact = f"{prefix}{wanted_gcc}"
        if shutil.which(exact):
            return Toolchain(profile.kernel_arch, prefix, exact, cc_version(exact), debian_arch=profile.debian_arch)
        return Toolchain(profile.kernel_arch, prefix, default, cc_version(default),
                         note=f"kernel asks for {wanted_gcc}; using the host's newer gcc {have}",
                         debian_arch=profile.debian_arch)
    return Toolchain(profile.kernel_arch, prefix, default, cc_version(default), debian_arch=profile.debian_arch)


def _sysroot_toolchain(profile: TargetProfile, spec: KernelSpec, wanted_gcc: str) -> Toolchain:
    triplet = profile.cross_compile.rstrip("-")
    gcc_pkg = f"{wanted_gcc}-{triplet.replace('_', '-')}" if triplet else wanted_gcc
    kbuild = next((p for p in spec.header_pkgs if p.name.startswith("linux-kbuild-")), None)
    runtime = tuple(d for d in dep_names(kbuild.depends) if d != "libc6") if kbuild else ()
    root = buildenv.ensure_sysroot(spec.suite, (gcc_pkg, *runtime))
    cc = f"{profile.cross_compile}{wanted_gcc}"
    p = buildenv.run_in(root, [cc, "--version"])
    version = p.stdout.splitlines()[0] if p.returncode == 0 and p.stdout else cc
    return Toolchain(profile.kernel_arch, profile.cross_compile, cc, f"{version} (in a {spec.suite} build environment)",
                     note=f"the host's gcc cannot build {spec.release}", sysroot=root,
                     debian_arch=profile.debian_arch)
