"""The image phase: the kernel and base initramfs to boot, the run's directory, and the files
to hand the guest (in its initrd for a cold boot, over the channel for a restored one)."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kharness.hw import gpio as khgpio
from kharness.image.overlay import with_files
from kharness.result.records import ImageRecord
from kharness.runner import deps as kdeps
from kharness.runner import programs
from kharness.runner.build import Built
from kharness.runner.context import Context
from kharness.runner.prepare import Prepared
from kharness.runner.workdir import make_run_dir
from kharness.targets import TargetProfile
from kharness.vm.qemu import BootSpec


@dataclass
class Staged:
    kernel: object                # the kernel bundle (its .kernel is the image QEMU boots)
    base: object                  # the base initramfs (path, key, busybox)
    dtb: Path | None
    boot: BootSpec                # kernel + base initramfs: what a snapshot was saved from
    payload: dict[str, bytes]     # {"name.ko": bytes}: the modules under test (and khgpio), and, when
                                  # they ride along, the kernel's own modules and "bin/<name>": programs
    deps: kdeps.Deps              # the kernel's own modules they need (in ``payload`` or ``base``)
    as_is: frozenset[str] = frozenset()   # payload names sent as they are (not through strip_debug)
    distro: object = None         # a distro guest's disks and initramfs (kharness.image.distro.DistroImage)


def guest_packages(config, opts) -> tuple[str, ...]:
    """What a distro guest adds to its defaults: the module's [guest] packages, then
    --guest-packages."""
    return tuple(dict.fromkeys((*config.guest_packages, *opts.guest_packages)))


def image(run: Context, prep: Prepared, built: Built) -> Staged:
    with run.phase("image"):
        # First: a kernel module the target lacks is bad input (exit 2), named before any image
        # is made or a guest booted.
        spec, headers, built_kernel, target = built.spec, built.headers, built.kernel, run.profile.name
        # A board's kernel that no Debian package gave (built on it, or against a tree on the host):
        # its own modules, by its own modprobe; nothing to fetch here.
        on_board = run.opts.board_modules
        if on_board:
            from kharness.runner.remote_build import board_deps

            deps = board_deps(run, built.load, prep.config, prep.timeout)
        else:
            deps = kdeps.resolve(lambda: kdeps.open_tree(spec, headers, built_kernel, target), built.load, prep.config)
        run.result.dependencies = deps.record()
        over_ssh = bool(run.opts.remote) or run.opts.guest != "busybox"
        if run.opts.remote:   # the board runs its own kernel: nothing to boot
            kernel = base = dtb = None
        else:
            kernel, base, dtb = prep.guest.image(built.spec, built.kernel)
        distro_image = None
        if run.opts.guest == "debian":
            from kharness.image import distro

            distro_image = distro.ensure_distro(run.profile, kernel, run.opts.guest_suite or distro.suite_for(spec.release),
                                                guest_packages(prep.config, run.opts), spec=spec)
        run.workdir = run.workdir or make_run_dir()   # (a build on the board made it for its .ko files)
        payload = {f"{m.name}.ko": m.path.read_bytes() for m in built.load}
        if run.khgpio is not None:
            payload[f"{khgpio.MODULE}.ko"] = run.khgpio.path.read_bytes()
        # Files that stay the same run after run, sent as they are (never through strip_debug):
        # the kernel's own modules as the packages ship them, the program checks' programs.
        resident = {} if on_board else kdeps.payload(deps, set(payload))   # (on the board: linked in /kh)
        resident.update(programs.payload(run))   # bin/<name>
        as_is = frozenset()
        if over_ssh or rides_along(resident, run.profile):   # (SSH: every file goes over SFTP)
            payload.update(resident)
            as_is = frozenset(resident)
        else:
            base = with_files(base, resident)
        if run.opts.remote:
            return Staged(None, None, None, None, payload, deps, as_is)
        run.result.image = ImageRecord(base=str(base.path), key=base.key, busybox=base.busybox,
                                       kernel=str(kernel.kernel))
        if distro_image is not None:
            run.result.guest.update(suite=distro_image.suite, packages=list(distro_image.packages),
                                    rootfs=str(distro_image.rootfs), key=distro_image.key)
            boot = BootSpec(kernel.kernel, distro_image.initrd, dtb, distro.kernel_append(run.profile, distro_image))
            return Staged(kernel, base, dtb, boot, payload, deps, as_is, distro=distro_image)
        return Staged(kernel, base, dtb, BootSpec(kernel.kernel, base.path, dtb), payload, deps, as_is)


# How long sending the files that stay the same run after run may take before they are baked into
# an image of their own instead. They are sent once: the run that sends them saves the guest with
# them (kharness.vm.snapshot.save_derived), so this is weighed against the cold boot and save an
# image of its own costs once (~3 s on x86_64, ~13 s on rpi2), not against every run.
RIDE_ALONG_SECONDS = 2.5


def rides_along(files: dict[str, bytes], profile: TargetProfile) -> bool:
    """Whether ``files`` (the kernel's own modules a run needs, its programs: the same run after
    run) go to a restored guest with the run's modules, or into an image with its own snapshot
    (kharness.image.overlay). Over a virtio console (x86_64, arm64) even a static program or
    videodev's chain takes a fraction of a second; over the Pis' mini-UART a big chain would
    take longer than booting an image that has it."""
    if not files:
        return True
    size = sum(len(gzip.compress(data, 1)) for data in files.values())
    return size * 4 / 3 / profile.channel_rate <= RIDE_ALONG_SECONDS   # base64 of the gzip


def strip_debug(data: bytes, profile: TargetProfile) -> bytes:
    """The module without its DWARF (symbols stay, so oopses still name functions): a tenth of
    the bytes to send to a restored guest. Unchanged if the target's strip is missing or fails."""
    strip = shutil.which(f"{profile.cross_compile}strip")
    if strip is None:
        return data
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.ko", Path(d) / "out.ko"
        src.write_bytes(data)
        p = subprocess.run([strip, "--strip-debug", "-o", str(dst), str(src)], capture_output=True)
        return dst.read_bytes() if p.returncode == 0 and dst.is_file() else data
