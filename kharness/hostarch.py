"""The host's architecture, in the names each tool uses for it.

Nothing in kharness assumes an amd64 host: a target whose Debian architecture is the host's is
built natively (no ``CROSS_COMPILE``), every other one with its cross compiler; the host-side
packages a kernel's headers need (``linux-kbuild-*``, which holds host executables) come from
the host's own Debian architecture.
"""

from __future__ import annotations

from functools import lru_cache

from kharness.errors import InfraError

# `uname -m` -> Debian architecture (dpkg-architecture's DEB_HOST_ARCH).
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "armhf", "armv8l": "armhf",
               "ppc64le": "ppc64el", "ppc64": "ppc64", "i686": "i386", "i386": "i386", "s390x": "s390x",
               "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64el"}

# Debian architecture -> its GNU triplet (DEB_HOST_MULTIARCH): the cross compilers' prefix and the
# directory under /usr (cross) or /usr/lib (native) holding that architecture's C library.
MULTIARCH = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "armhf": "arm-linux-gnueabihf",
             "armel": "arm-linux-gnueabi", "ppc64el": "powerpc64le-linux-gnu", "ppc64": "powerpc64-linux-gnu",
             "i386": "i686-linux-gnu", "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu",
             "loong64": "loongarch64-linux-gnu", "mips64el": "mips64el-linux-gnuabi64"}


def machine() -> str:
    """``uname -m`` of the host (``x86_64``, ``aarch64``): what ``platform.machine()`` says on
    Linux, without importing platform (~3 ms of every run). Tests replace this function."""
    import os

    return os.uname().machine


@lru_cache(maxsize=1)
def _debian_arch(mach: str) -> str:
    arch = DEBIAN_ARCH.get(mach)
    if arch is None:
        raise InfraError(f"kharness does not know the Debian architecture of a {mach} host",
                         hint="run it on an amd64 or arm64 host (or a Debian container there)")
    return arch


def debian_arch() -> str:
    """The host's Debian architecture: ``amd64`` on x86_64, ``arm64`` on aarch64."""
    return _debian_arch(machine())


def native(debian_arch_of_target: str) -> bool:
    """Whether code for this Debian architecture is built by the host's own compiler."""
    return debian_arch_of_target == DEBIAN_ARCH.get(machine())


def triplet(debian_arch_of_target: str) -> str:
    """The GNU triplet of a Debian architecture (``aarch64-linux-gnu`` for arm64); empty if unknown."""
    return MULTIARCH.get(debian_arch_of_target, "")
