"""The QEMU command line for a target profile: pure data in, argv out."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import InfraError
from kharness.targets import TargetProfile


@dataclass(frozen=True)
class BootSpec:
    kernel: Path
    initrd: Path
    dtb: Path | None = None
    append: str = ""


def kernel_cmdline(profile: TargetProfile, extra: str = "") -> str:
    # panic=-1 with -no-reboot: a panic makes QEMU exit at once instead of rebooting into a
    # fresh guest that could look healthy.
    words = [f"console={profile.console}", "panic=-1", f"kh_cmd={profile.command_tty}",
             profile.append, extra]
    return " ".join(w for w in words if w)


def qemu_binary(profile: TargetProfile) -> str:
    path = shutil.which(profile.qemu)
    if path is None:
        raise InfraError(f"{profile.qemu} is not installed",
                         hint="run `kharness doctor --install` to get it")
    return path


def build_argv(profile: TargetProfile, boot: BootSpec, chan_dir: Path, accel: str,
               extra: tuple[str, ...] = (), console_file: Path | None = None) -> list[str]:
    """argv for one guest. ``chan_dir`` holds the FIFO pairs ``con.{in,out}``, ``cmd.{in,out}``.
    ``console_file``: a guest that outlives kharness (`kharness guest up`) writes its console
    there and has no command channel (it is driven over SSH)."""
    argv = [qemu_binary(profile), "-nodefaults", "-no-user-config", "-no-reboot",
            "-display", "none", "-monitor", "none",
            "-M", profile.machine, "-m", str(profile.memory_mb), "-smp", str(profile.smp)]
    if accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", "tcg" + (f",{profile.tcg_options}" if profile.tcg_options else "")]
        if profile.cpu:
            argv += ["-cpu", profile.cpu]
    argv += ["-kernel", str(boot.kernel), "-initrd", str(boot.initrd),
             "-append", kernel_cmdline(profile, boot.append)]
    if boot.dtb is not None:
        argv += ["-dtb", str(boot.dtb)]
    con = f"file,id=kh_con,path={console_file}" if console_file else f"pipe,id=kh_con,path={chan_dir / 'con'}"
    cmd = "null,id=kh_cmd" if console_file else f"pipe,id=kh_cmd,path={chan_dir / 'cmd'}"
    argv += ["-chardev", con, *profile.console_args,
             "-chardev", cmd, *profile.command_args,
             *profile.extra_args, *extra]
    return argv


def reproducer(argv: list[str]) -> str:
    return shlex.join(argv)
