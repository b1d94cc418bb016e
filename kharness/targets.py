"""Target profiles: one declarative TOML file per board in ``images/``, loaded into a frozen dataclass.

Adding a board is adding a file. Every QEMU choice sits in the profile with the reason beside it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from kharness import hostarch
from kharness.errors import UsageError
from kharness.paths import data_dir


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    # Debian side
    debian_arch: str            # Packages index architecture: amd64, arm64, armhf, ppc64el
    kernel_flavour: str         # suffix of linux-image-<release>: amd64, arm64, armmp, powerpc64le
    series: tuple[str, ...]     # the series kharness is tested with on this board (the matrix's and the
                                # tests' default); what exists is the archive's to say (debian/suites.py)
    # kbuild side
    kernel_arch: str            # ARCH= for kbuild
    cross_compile: str          # CROSS_COMPILE= prefix; loaded as "" when the host is of debian_arch
                                # (hostarch: an arm64 host builds arm64 natively, x86_64 with a cross gcc)
    endian: str                 # "little" | "big"
    bits: int                   # 32 | 64
    # QEMU side
    qemu: str                   # the qemu-system-* binary
    machine: str
    memory_mb: int
    console: str                # kernel console device in the guest
    command_tty: str            # the guest device that carries the command channel
    console_args: tuple[str, ...]   # argv wiring chardev "kh_con" to the console device
    command_args: tuple[str, ...]   # argv wiring chardev "kh_cmd" to the command device
    kernel_boot: str = "image"  # "image": the packaged kernel; "pvh-vmlinux": its vmlinux, extracted for
                                # x86 PVH boot; "vmlinux": the ELF of a kernel kharness built
    kernel_source: str = "debian"   # "debian": Debian's packages; "debian-source": built from linux-source-*
    config_fragment: str = ""   # for built kernels (ppc64, debug kernels, --kernel-tree): the fragment
                                # under images/ merged on tinyconfig that makes a kernel boot on this board
    debug_checkers: tuple[str, ...] = ()   # debug kernel checkers kharness builds for this board
    busybox: str = "debian"     # "debian": busybox-static for debian_arch; "source": built from Debian's source
    cpu: str | None = None
    smp: int = 1
    tcg_options: str = ""       # appended to -accel tcg (e.g. thread=single)
    dtb: str | None = None      # path of the device tree inside the kernel package, if the board needs one
    dtb_fixups: tuple = ()      # [node, property, string value] set in a copy of the tree
    append: str = ""            # extra kernel command line
    extra_args: tuple[str, ...] = ()
    guest_modules: tuple[str, ...] = ()   # kernel modules /init loads before the command channel opens
    kvm_host_arch: str | None = None      # host `uname -m` on which KVM may be tried
    snapshot: bool = True       # restore a saved ready guest (savevm/-loadvm) instead of booting
    # Bytes per second the command channel carries into the guest under TCG (bench/bench_delivery.py):
    # whether files that rarely change (the kernel's own modules, programs) ride along with every
    # restored run or are baked into an image of their own, with its own snapshot.
    channel_rate: int = 30_000
    # Distro guests (--guest debian, kharness.image.distro): a Debian root filesystem on a virtio
    # disk, systemd, sshd. "" for distro_disk: the board has none.
    distro_disk: str = ""       # QEMU -device model of the disks (virtio-blk-pci, virtio-blk-device)
    distro_net: str = ""        # QEMU -device model of the network card, user-mode networking behind it
    distro_modules_disk: str = ""   # the modules disk's -device model where not distro_disk's ("sd": the
                                    # board's SD card slot, of which there is one)
    distro_initrd_modules: tuple[str, ...] = ()   # what the initramfs loads to reach the disks (with
                                                  # their dependencies, from the kernel's modules.dep)
    distro_memory_mb: int = 1024
    distro_append: str = ""     # kernel command-line words of the distro guest only (udev loads
                                # every driver the device tree names: some must be kept out)
    # A restored distro guest must answer SSH before kharness can repair anything in it (the
    # busybox guest's first command can): false where a restored guest's timers stall (pseries).
    distro_snapshot: bool = True
    notes: str = ""
    source: Path = field(default=Path(), compare=False)

    @property
    def cross_prefix(self) -> str:
        return self.cross_compile


def _load(path: Path) -> TargetProfile:
    data = tomllib.loads(path.read_text())
    known = {f.name for f in fields(TargetProfile)}
    unknown = set(data) - known
    if unknown:
        raise UsageError(f"{path}: unknown keys {sorted(unknown)}")
    def freeze(v):
        return tuple(freeze(x) for x in v) if isinstance(v, list) else v

    for key, value in list(data.items()):
        data[key] = freeze(value)
    data["cross_compile"] = host_cross_compile(data.get("debian_arch", ""), data.get("cross_compile", ""))
    return TargetProfile(source=path, **data)


def host_cross_compile(debian_arch: str, declared: str) -> str:
    """The CROSS_COMPILE prefix on this host: none where the host is of the target's Debian
    architecture, else the profile's (or, if it names none, the architecture's GNU triplet)."""
    if hostarch.native(debian_arch):
        return ""
    if declared:
        return declared
    t = hostarch.triplet(debian_arch)
    return f"{t}-" if t else ""


def all_targets() -> dict[str, TargetProfile]:
    out = {}
    for path in sorted(data_dir("images").glob("*.toml")):
        prof = _load(path)
        out[prof.name] = prof
    return out


def get_target(name: str) -> TargetProfile:
    targets = all_targets()
    if name not in targets:
        raise UsageError(f"unknown target {name!r}", hint=f"known targets: {', '.join(targets)}")
    return targets[name]
