"""Distro guests: the same Debian kernel, booted into a Debian userland (systemd, udev, sshd) that
kharness drives over SSH instead of the busybox initramfs's command channel.

What boots (:func:`ensure_distro`, every part cached by content):

* the **root disk**: a Debian root filesystem made with mmdebstrap (:mod:`kharness.image.rootfs`),
  a raw ext4 image never written to: each guest gets a qcow2 overlay on it (:func:`overlay`);
* the **modules disk**: the kernel's whole module tree, read-only on /lib/modules
  (:mod:`kharness.image.modules_disk`): one root image serves every kernel of its suite;
* the **initramfs**: busybox and the modules that reach the disks; it mounts both and hands over to
  systemd (:mod:`kharness.image.distro_initrd`, images/init-distro.sh).

A boot is then ``kharness.vm.machine.Guest(profile, BootSpec(kernel.kernel, image.initrd, dtb,
kernel_append(profile, image)), workdir, accel, qemu_args(profile, image, overlay, port))``: the
console is captured as for every guest; sshd answers on 127.0.0.1:<port> as root with
:func:`kharness.sshkeys.client_key`, presenting :attr:`DistroImage.host_key`.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kharness import proc
from kharness.errors import InfraError, UsageError
from kharness.image.distro_initrd import ensure_distro_initrd
from kharness.image.modules_disk import ensure_modules_disk
from kharness.image.rootfs import check_packages, ensure_rootfs
from kharness.kernels.modstore import modules_dep, modules_dir
from kharness.kernels.resolve import KernelSpec, series_of
from kharness.kernels.store import KernelBundle
from kharness.sshkeys import guest_host_key
from kharness.targets import TargetProfile, all_targets

# The Debian suite whose userland goes with each kernel series: the one that ships that kernel.
SUITES = {"5.10": "bullseye", "6.1": "bookworm", "6.12": "trixie", "7.2": "sid"}
# What every distro guest has, kept lean (each package is download, install and boot time):
# systemd and udev (what drivers meet in real life), sshd and its SFTP server (kharness's
# transport; apt installs no Recommends), kmod (modprobe on the modules disk), iproute2 and procps
# (ip, ps, sysctl for tests and the health look), cpio (a restored guest's files arrive as one
# compressed bundle on a command's stdin, as in the busybox guest: one SSH command, not one each).
DEFAULT_PACKAGES: tuple[str, ...] = ("systemd-sysv", "udev", "openssh-server", "openssh-sftp-server",
                                     "kmod", "iproute2", "procps", "cpio")
QEMU_IMG_TIMEOUT = 60.0
# The one-time first boot of a foreign root (dpkg installs ~150 packages under TCG): minutes.
CONFIGURE_TIMEOUT = 3600.0
CONFIGURE_COMMIT_TIMEOUT = 300.0


@dataclass(frozen=True)
class DistroImage:
    rootfs: Path        # cached ext4 image (raw), never written to: each guest gets a qcow2 overlay on it
    modules: Path       # cached ext4 image holding lib/modules/<release> (depmod'ed), attached read-only
    initrd: Path        # busybox initramfs that mounts both and switch_roots to the rootfs's systemd
    key: str            # content key of all of the above (snapshots are keyed on it)
    suite: str
    packages: tuple[str, ...]
    host_key: str       # the public host key line the guest's sshd presents (from guest_host_key())
    user: str = "root"


def suite_for(release_or_series: str) -> str:
    """``6.1.0-27-amd64`` or ``6.1`` -> ``bookworm``."""
    series = series_of(release_or_series)
    if series not in SUITES:
        raise UsageError(f"no Debian userland is known for kernel {release_or_series!r}",
                         hint=f"distro guests run kernel series {', '.join(SUITES)}")
    return SUITES[series]


def guest_packages(text: str | None) -> tuple[str, ...]:
    """``--guest-packages v4l-utils,i2c-tools`` -> the names, each checked (UsageError)."""
    return check_packages([n.strip() for n in (text or "").split(",") if n.strip()])


def check_target(profile: TargetProfile) -> None:
    """A target without a distro guest is refused (UsageError), before any build or download."""
    if not profile.distro_disk:
        able = ", ".join(t.name for t in all_targets().values() if t.distro_disk)
        raise UsageError(f"target {profile.name} has no distro guest (no Debian userland or disk for it "
                         f"in its profile)", hint=f"use the busybox guest there; distro guests run on {able}")


def ensure_distro(profile: TargetProfile, kernel: KernelBundle, suite: str,
                  packages: tuple[str, ...] = (), *, spec: KernelSpec) -> DistroImage:
    """Everything a distro guest of ``profile`` boots from with ``kernel`` (Debian's package,
    ``spec``), made where missing. ``packages`` are added to :data:`DEFAULT_PACKAGES`."""
    check_target(profile)
    if suite not in SUITES.values():
        raise UsageError(f"unknown Debian suite {suite!r}", hint=f"suites: {', '.join(SUITES.values())}")
    extra = check_packages(packages)   # before any download or mmdebstrap run
    if not spec.image_pkgs:
        raise UsageError("distro guests boot Debian's packaged kernels, not kernels kharness builds",
                         hint="drop --debug/--kernel-tree, or use the busybox guest")
    pkgs = tuple(dict.fromkeys(DEFAULT_PACKAGES + extra))
    moddir = modules_dir(spec)
    modules, mkey = ensure_modules_disk(kernel.release, moddir)
    initrd, ikey = ensure_distro_initrd(profile, kernel.release, moddir, lambda: modules_dep(spec, profile.name))

    def configure(image: Path) -> None:
        first_boot(profile, kernel, initrd, modules, image)

    rootfs, rkey = ensure_rootfs(profile, suite, pkgs, configure)
    key = hashlib.sha256(f"{rkey}\n{mkey}\n{ikey}".encode()).hexdigest()[:16]
    return DistroImage(rootfs=rootfs, modules=modules, initrd=initrd, key=key, suite=suite,
                       packages=pkgs, host_key=guest_host_key()[1])


# The device model of a disk on a board's SD card slot (a Raspberry Pi has one, and no PCI).
SD_CARD = "sd"


def overlay(profile: TargetProfile, base: Path, dest: Path, base_format: str = "raw") -> Path:
    """The per-guest writable root disk: a qcow2 overlay on the sealed root image ``base`` (or on
    a saved guest's disk, ``base_format="qcow2"``: runner.distro_snapshot)."""
    size = []
    if profile.distro_disk == SD_CARD and base_format == "raw":   # (a saved qcow2 has the size already)
        # QEMU takes only SD cards of a power-of-two size: the overlay is that, larger than the
        # root image (the file system inside keeps its size; the rest reads as zeros).
        size = [str(1 << max(0, (base.stat().st_size - 1).bit_length()))]
    p = proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", base_format, str(dest), *size],
                 timeout=QEMU_IMG_TIMEOUT, what="qemu-img create (distro root overlay)", merge_stderr=True)
    if p.returncode != 0:
        raise InfraError(f"qemu-img could not create {dest}: {p.stdout.strip()[-300:]}",
                         hint="install qemu-utils (`kharness doctor --install`)")
    return dest


def _drive_path(path: Path) -> str:
    return str(path).replace(",", ",,")   # QEMU's option syntax: a comma in a value is doubled


def _disk(model: str, drive_id: str, path: Path, options: str) -> tuple[str, ...]:
    """A disk on the device ``model``: a virtio or USB device, or the board's SD card slot."""
    if model == SD_CARD:
        return ("-drive", f"file={_drive_path(path)},if=sd,{options}")
    return ("-drive", f"file={_drive_path(path)},if=none,id={drive_id},{options}",
            "-device", f"{model},drive={drive_id}")


def disk_args(profile: TargetProfile, root: Path, root_format: str, modules: Path) -> tuple[str, ...]:
    # cache=unsafe: the root disk is a throwaway overlay (or, at a first boot, an image sealed only
    # once the guest powered off cleanly); ignoring the guest's flushes saves seconds under TCG.
    # The modules disk: on the same kind of device as the root, or (a board with one SD card
    # slot) on the profile's distro_modules_disk.
    return (*_disk(profile.distro_disk, "kh_root", root, f"format={root_format},cache=unsafe"),
            *_disk(profile.distro_modules_disk or profile.distro_disk, "kh_mods", modules, "format=raw,readonly=on"))


def qemu_args(profile: TargetProfile, image: DistroImage, root_overlay: Path, ssh_port: int) -> tuple[str, ...]:
    """QEMU arguments of a distro guest, after build_argv's (a later -m wins)."""
    # Memory: systemd, udev, sshd and a test's programs in a Debian userland; 1024 MB leaves
    # room for the page cache of a root disk read under TCG.
    # restrict=on: the guest reaches nothing beyond QEMU's own network (no host service, no
    # outside address); the forward is bound to the host's loopback only.
    return ("-m", str(profile.distro_memory_mb),
            *disk_args(profile, root_overlay, "qcow2", image.modules),
            "-netdev", f"user,id=kh_net,restrict=on,hostfwd=tcp:127.0.0.1:{int(ssh_port)}-:22",
            "-device", f"{profile.distro_net},netdev=kh_net")


def kernel_append(profile: TargetProfile, image: DistroImage | None = None) -> str:
    """Kernel command-line words of a distro boot (BootSpec.append). The console stays the
    profile's (a panic is seen there); systemd's status lines stay off it."""
    # init_on_free=1: freed pages are zeroed, so that a saved guest's free RAM is zero pages, which
    # a migration stream stores as nothing (runner.distro_snapshot drops the page cache before the
    # save): a smaller state to load on every restored run.
    return " ".join(filter(None, ("systemd.show_status=0 net.ifnames=0 fsck.mode=skip init_on_free=1",
                                  profile.distro_append)))


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound to port 0, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_EXIT_RE = re.compile(r"kh-configure-exit (\d+)")
# The kernel's last word after /init's `poweroff -f`. A board without a way to switch itself off
# (a Raspberry Pi without its watchdog driver) halts and QEMU keeps running: the disks were
# unmounted before, so the guest is done and is stopped (Guest.close).
_HALT_RE = re.compile(r"reboot: (System halted|Power down)")


def _halted(console: str) -> bool:
    return _HALT_RE.search(console) is not None


def _stop_cleanly(proc) -> None:
    """SIGTERM, which QEMU takes as a shutdown: it writes out the disk's qcow2 metadata (a
    SIGKILL would lose what it holds in memory under cache=unsafe)."""
    proc.terminate()
    try:
        proc.wait(timeout=QEMU_IMG_TIMEOUT)
    except Exception:   # noqa: BLE001 - Guest.close() kills it
        pass


def first_boot(profile: TargetProfile, kernel: KernelBundle, initrd: Path, modules: Path, image: Path) -> None:
    """Boot the unpacked foreign root ``image`` once (``kh_configure``): its packages install
    inside it, then it powers off. An InfraError with the console's last lines if that fails."""
    # Here, not at the top: only a foreign root's first boot needs a QEMU guest.
    from kharness.image.dtb import prepare_dtb
    from kharness.vm.machine import Guest
    from kharness.vm.qemu import BootSpec

    dtb = prepare_dtb(kernel.dtb_dir, profile.dtb, profile.dtb_fixups, kernel.release) if profile.dtb else None
    boot = BootSpec(kernel.kernel, initrd, dtb, kernel_append(profile) + " kh_configure")
    with tempfile.TemporaryDirectory(prefix="kh-configure.") as d:
        disk, fmt = image, "raw"
        if profile.distro_disk == SD_CARD:   # a power-of-two card over the image, committed after
            disk, fmt = overlay(profile, image, Path(d) / "card.qcow2"), "qcow2"
        g = Guest(profile, boot, Path(d), "tcg",
                  ("-m", str(profile.distro_memory_mb), *disk_args(profile, disk, fmt, modules)))
        try:
            g.start()
            deadline = time.monotonic() + CONFIGURE_TIMEOUT
            while g.proc.poll() is None and time.monotonic() < deadline and not _halted(g.console_text(4096)):
                time.sleep(1.0)
            if g.proc.poll() is None and _halted(g.console_text(4096)):
                _stop_cleanly(g.proc)
            text = g.console_text(65536)
            if g.proc.poll() is None and not _halted(text):
                raise InfraError(f"the first boot of the {profile.debian_arch} root filesystem did not finish "
                                 f"within {CONFIGURE_TIMEOUT:g}s: {_tail(text)}")
        finally:
            g.close()
        m = _EXIT_RE.search(text)
        if m is None or m.group(1) != "0":
            raise InfraError(f"the first boot of the {profile.debian_arch} root filesystem failed: {_tail(text, 12)}")
        if disk != image:
            _commit(disk, image)


def _commit(top: Path, base: Path) -> None:
    """Write the card overlay's changes into the root image, which keeps its size (QEMU would
    grow it to the card's; the file system inside never reaches beyond the image's end)."""
    size = base.stat().st_size
    p = proc.run(["qemu-img", "commit", "-q", str(top)], timeout=CONFIGURE_COMMIT_TIMEOUT,
                 what="qemu-img commit (first boot)", merge_stderr=True)
    if p.returncode != 0:
        raise InfraError(f"qemu-img could not commit the first boot's changes: {p.stdout.strip()[-300:]}")
    if base.stat().st_size > size:
        os.truncate(base, size)


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "no console output"
