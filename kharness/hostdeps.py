"""What kharness needs from the host, and the Debian package that provides each thing.

The one list of kharness's system packages: ``kharness doctor`` checks it (and ``--install``
installs what is missing), and this repository's Makefile reads it (``python3 -m
kharness.hostdeps``) and adds only what kharness's own tests need. Per target it follows the
profile as loaded on this host (:mod:`kharness.hostarch`): the QEMU binary, the target's C compiler
(native or cross) and its static C library.

Standard library only: the Makefile runs this before any virtual environment exists.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from kharness.hostarch import triplet
from kharness.hostcc import gcc_package, libc_package
from kharness.targets import TargetProfile, all_targets

DEFAULT_TARGET = "x86_64"   # `kharness run`'s default: what `kharness doctor` must find complete

# qemu-system-* binary -> the Debian package holding it.
QEMU_PACKAGES = {"qemu-system-x86_64": "qemu-system-x86", "qemu-system-i386": "qemu-system-x86",
                 "qemu-system-aarch64": "qemu-system-arm", "qemu-system-arm": "qemu-system-arm",
                 "qemu-system-ppc64": "qemu-system-ppc", "qemu-system-ppc": "qemu-system-ppc"}
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# Who needs a thing, besides a target: every run, or a way of getting a kernel some runs take.
EVERY_RUN = "every run"
KERNEL_BUILDS = "kernel builds"     # ppc64's kernels, debug kernels (--debug), --kernel-tree
BUILD_ENVS = "newer kernels"        # a kernel whose gcc the host lacks (6.12, 7.2): mmdebstrap + bwrap
DISTRO_GUESTS = "distro guests"     # --guest debian: a Debian root filesystem on virtio disks (image/distro.py)


@dataclass(frozen=True)
class Need:
    """One thing to find on the host: a command on PATH (``command``) or a file (``path``)."""
    what: str                    # what the doctor's table calls it
    package: str                 # the Debian package that provides it
    command: str = ""
    path: str = ""
    users: tuple[str, ...] = ()  # targets, EVERY_RUN, KERNEL_BUILDS or BUILD_ENVS
    why: str = ""


_EVERY_RUN = (
    Need("make", "make", command="make", why="kbuild"),
    Need("gcc", "gcc", command="gcc", why="the host's compiler (kbuild's host programs)"),
    Need("depmod", "kmod", command="depmod", why="the index of a kernel's own modules"),
    Need("qemu-img", "qemu-utils", command="qemu-img", why="the disk that holds saved guests"),
    Need("gpgv", "gpgv", command="gpgv", why="checks the archive's signatures"),
    Need("Debian archive keyring", "debian-archive-keyring", path=DEFAULT_KEYRING,
         why="the keys gpgv checks against (or KHARNESS_KEYRING)"),
    Need("CA certificates", "ca-certificates", path="/etc/ssl/certs/ca-certificates.crt",
         why="an https mirror"),
)
_KERNEL_BUILDS = (
    Need("bc", "bc", command="bc"), Need("flex", "flex", command="flex"), Need("bison", "bison", command="bison"),
    Need("libelf headers", "libelf-dev", path="/usr/include/libelf.h"),
    Need("OpenSSL headers", "libssl-dev", path="/usr/include/openssl/ssl.h"),
    Need("xz", "xz-utils", command="xz", why="unpacks linux-source"),
    Need("lz4", "lz4", command="lz4", why="x86 kernels kharness builds are LZ4-compressed"),
)
_BUILD_ENVS = (
    Need("mmdebstrap", "mmdebstrap", command="mmdebstrap"),
    Need("bwrap", "bubblewrap", command="bwrap"),
    Need("newuidmap", "uidmap", command="newuidmap", why="rootless mmdebstrap"),
)

_DISTRO_GUESTS = (
    Need("mmdebstrap", "mmdebstrap", command="mmdebstrap", why="the guest's Debian root filesystem"),
    Need("newuidmap", "uidmap", command="newuidmap", why="rootless mmdebstrap"),
    Need("mke2fs", "e2fsprogs", command="mke2fs", why="the guest's ext4 disks"),
    Need("unshare", "util-linux", command="unshare", why="the root filesystem written without root"),
    Need("dpkg-deb", "dpkg", command="dpkg-deb", why="a foreign root's Essential packages"),
    Need("qemu-img", "qemu-utils", command="qemu-img", why="each guest's overlay on the root disk"),
)


def libc_file(profile: TargetProfile) -> str:
    """The target's static C library as its Debian package installs it."""
    t = triplet(profile.debian_arch) or profile.cross_compile.rstrip("-")
    return f"/usr/{t}/lib/libc.a" if profile.cross_compile else f"/usr/lib/{t}/libc.a"


def target_needs(profile: TargetProfile) -> list[Need]:
    users = (profile.name,)
    cc = f"{profile.cross_compile}gcc"
    needs = [
        Need(profile.qemu, QEMU_PACKAGES.get(profile.qemu, "qemu-system"), command=profile.qemu, users=users),
        Need(cc, gcc_package(profile), command=cc, users=users),
        Need(f"static libc ({profile.debian_arch})", libc_package(profile), path=libc_file(profile), users=users),
    ]
    if profile.dtb_fixups:
        needs.append(Need("fdtput", "device-tree-compiler", command="fdtput", users=users))
    if profile.kernel_source != "debian":   # every kernel of this board is built from source
        needs += [Need(n.what, n.package, n.command, n.path, users, n.why) for n in _KERNEL_BUILDS]
    return needs


def needs(targets: list[TargetProfile]) -> list[Need]:
    """Everything these targets need, each thing once (its users merged), every-run things first."""
    merged: dict[str, Need] = {}
    order = [Need(n.what, n.package, n.command, n.path, (EVERY_RUN,), n.why) for n in _EVERY_RUN]
    for p in targets:
        order += target_needs(p)
    order += [Need(n.what, n.package, n.command, n.path, (KERNEL_BUILDS,), n.why) for n in _KERNEL_BUILDS]
    order += [Need(n.what, n.package, n.command, n.path, (BUILD_ENVS,), n.why) for n in _BUILD_ENVS]
    order += [Need(n.what, n.package, n.command, n.path, (DISTRO_GUESTS,), n.why) for n in _DISTRO_GUESTS]
    for n in order:
        have = merged.get(n.what)
        if have is None:
            merged[n.what] = n
        else:
            users = have.users + tuple(u for u in n.users if u not in have.users)
            merged[n.what] = Need(have.what, have.package, have.command, have.path, users, have.why)
    return list(merged.values())


def all_packages() -> list[str]:
    """Every Debian package kharness may need on this host, for every target, sorted."""
    return sorted({n.package for n in needs(list(all_targets().values()))})


if __name__ == "__main__":   # the Makefile's system-deps: one line of package names
    sys.stdout.write(" ".join(all_packages()) + "\n")
