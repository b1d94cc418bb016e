"""The image phase: the kernel and base initramfs to boot, the run's directory, and the modules
to hand the guest (in its initrd for a cold boot, over the channel for a restored one)."""

from __future__ import annotations

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
    payload: dict[str, bytes]     # {"name.ko": bytes}: the modules under test (and khgpio); "bin/<name>": programs
    deps: kdeps.Deps              # the kernel's own modules they need (in ``base``, under /kh)


def image(run: Context, prep: Prepared, built: Built) -> Staged:
    with run.phase("image"):
        # First: a kernel module the target lacks is bad input (exit 2), named before any image
        # is made or a guest booted.
        spec, headers, built_kernel, target = built.spec, built.headers, built.kernel, run.profile.name
        deps = kdeps.resolve(lambda: kdeps.open_tree(spec, headers, built_kernel, target), built.load, prep.config)
        run.result.dependencies = deps.record()
        kernel, base, dtb = prep.guest.image(built.spec, built.kernel)
        run.workdir = make_run_dir()
        payload = {f"{m.name}.ko": m.path.read_bytes() for m in built.load}
        if run.khgpio is not None:
            payload[f"{khgpio.MODULE}.ko"] = run.khgpio.path.read_bytes()
        payload.update(programs.payload(run))   # bin/<name>: the program checks' programs
        # The kernel's own modules go into the image, not over the command channel (see
        # kharness.image.overlay): as the packages ship them, never through strip_debug.
        base = with_files(base, kdeps.payload(deps, set(payload)))
        run.result.image = ImageRecord(base=str(base.path), key=base.key, busybox=base.busybox,
                                       kernel=str(kernel.kernel))
        return Staged(kernel, base, dtb, BootSpec(kernel.kernel, base.path, dtb), payload, deps)


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
