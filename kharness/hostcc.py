"""The host's C compilers: which version each is (the resolver and the toolchain choice ask), and
the target's user-space compiler that kh-agent, companion programs and header probes are built
with (missing: an InfraError naming the Debian package)."""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache

from kharness import proc
from kharness.errors import InfraError
from kharness.targets import TargetProfile


def gcc_package(profile: TargetProfile) -> str:
    """The Debian package of the target's user-space C compiler."""
    return f"gcc-{profile.cross_compile.rstrip('-')}" if profile.cross_compile else "gcc"


def libc_package(profile: TargetProfile) -> str:
    """The Debian package with the target's C library to link against (static included)."""
    return f"libc6-dev-{profile.debian_arch}-cross" if profile.cross_compile else "libc6-dev"


def target_cc(profile: TargetProfile, purpose: str) -> str:
    """The path of the target's user-space C compiler (``{cross_compile}gcc``); InfraError naming
    its Debian package when it is missing. ``purpose``: what it is needed for, for that message."""
    name = f"{profile.cross_compile}gcc"
    found = shutil.which(name)
    if found is None:
        raise InfraError(f"{name} is not installed (needed {purpose}; Debian package {gcc_package(profile)})",
                         hint="run `make install`")
    return found


def cc_identity(cc: str) -> str:
    """A compiler's identity without running it: its real file's path, size and time (an upgrade
    changes them). For cache keys on the hot path of every run."""
    real = os.path.realpath(cc)
    st = os.stat(real)
    return f"{real}:{st.st_size}:{st.st_mtime_ns}"


@lru_cache(maxsize=None)
def cc_version(cc: str) -> str:
    """The first line of ``cc --version`` (``cc`` itself if it cannot say)."""
    try:
        return proc.run([cc, "--version"], timeout=30).stdout.splitlines()[0]
    except (OSError, IndexError, proc.ProcessTimeout):
        return cc


def cc_major(cc: str) -> int | None:
    """gcc's major version (12 for ``gcc (Debian 12.2.0-14) 12.2.0``), None if unknown."""
    m = re.search(r"\) (\d+)\.", cc_version(cc)) or re.search(r" (\d+)\.\d+\.\d+", cc_version(cc))
    return int(m.group(1)) if m else None
