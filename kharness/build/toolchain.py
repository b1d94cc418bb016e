"""Which compiler builds modules for a kernel.

Debian's headers name the gcc their kernel was built with (``gcc-12``, ``linux-compiler-gcc-10-x86``).
kharness uses that exact gcc when the host has it; an older one is replaced by the host's gcc
(5.10's gcc-10 -> gcc-12 works: the flags it uses are a subset). A newer one than the host has
cannot be replaced (trixie's 6.12 uses gcc-14 flags, sid's 7.2 tools need a newer glibc).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from kharness.errors import InfraError
from kharness.targets import TargetProfile


@dataclass(frozen=True)
class Toolchain:
    arch: str                 # ARCH=
    cross_compile: str        # CROSS_COMPILE=
    cc: str                   # CC=
    version: str              # first line of `cc --version`
    note: str = ""            # why this compiler, when it is not the one the kernel asked for

    def make_vars(self) -> list[str]:
        out = [f"ARCH={self.arch}", f"CC={self.cc}"]
        if self.cross_compile:
            out.append(f"CROSS_COMPILE={self.cross_compile}")
        return out


@lru_cache(maxsize=None)
def _version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return cc


def _major(cc: str) -> int | None:
    m = re.search(r"\) (\d+)\.", _version(cc)) or re.search(r" (\d+)\.\d+\.\d+", _version(cc))
    return int(m.group(1)) if m else None


def pick_toolchain(profile: TargetProfile, wanted_gcc: str | None) -> Toolchain:
    prefix = profile.cross_compile
    default = f"{prefix}gcc"
    if shutil.which(default) is None:
        raise InfraError(f"{default} is not installed (needed to build for {profile.name})",
                         hint="run `make install` to install the cross compilers")
    if wanted_gcc:
        exact = f"{prefix}{wanted_gcc}"
        if shutil.which(exact):
            return Toolchain(profile.kernel_arch, prefix, exact, _version(exact))
        want = int(wanted_gcc.split("-")[1])
        have = _major(default)
        if have is not None and have < want:
            raise InfraError(
                f"this kernel was built with {wanted_gcc}, the host has gcc {have}",
                hint="use a kernel built with the host's compiler (e.g. 6.12 from bookworm-backports)")
        return Toolchain(profile.kernel_arch, prefix, default, _version(default),
                         note=f"kernel asks for {wanted_gcc}; using the host's newer gcc {have}")
    return Toolchain(profile.kernel_arch, prefix, default, _version(default))
