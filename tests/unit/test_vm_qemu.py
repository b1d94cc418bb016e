"""Unit tests for kharness.vm.qemu: the QEMU command line built from a target profile."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from kharness.errors import InfraError
from kharness.targets import get_target
from kharness.vm import qemu
from kharness.vm.qemu import BootSpec, build_argv, kernel_cmdline, qemu_binary, reproducer

QEMU = "/usr/bin/qemu-system-x86_64"


@pytest.fixture
def x86(monkeypatch):
    monkeypatch.setattr(qemu.shutil, "which", lambda name: QEMU if name == "qemu-system-x86_64" else None)
    # pin the profile's free-form command-line tuning so that the argv can be compared exactly
    return dataclasses.replace(get_target("x86_64"), append="quiet")


BOOT = BootSpec(kernel=Path("/k/vmlinux"), initrd=Path("/run/initrd.img"))
CHAN = Path("/run/chan")


def _after(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_tcg_argv_exact(x86):
    assert build_argv(x86, BOOT, CHAN, "tcg") == [
        QEMU, "-nodefaults", "-no-user-config", "-no-reboot",
        "-display", "none", "-monitor", "none",
        "-M", "pc", "-m", "256", "-smp", "1",
        "-accel", "tcg",
        "-kernel", "/k/vmlinux", "-initrd", "/run/initrd.img",
        "-append", "console=ttyS0 panic=-1 kh_cmd=hvc0 quiet",
        "-chardev", "pipe,id=kh_con,path=/run/chan/con", "-serial", "chardev:kh_con",
        "-chardev", "pipe,id=kh_cmd,path=/run/chan/cmd", "-device", "virtio-serial-pci",
        "-device", "virtconsole,chardev=kh_cmd",
    ]


def test_argv_contents(x86):
    argv = build_argv(x86, BootSpec(Path("/k"), Path("/i"), append="kh_extra=1"), CHAN, "tcg")
    assert argv[0] == QEMU
    for flag in ("-nodefaults", "-no-reboot"):
        assert argv.count(flag) == 1
    (append,) = _after(argv, "-append")
    words = append.split()
    assert words[:3] == ["console=ttyS0", "panic=-1", "kh_cmd=hvc0"]
    assert words[-1] == "kh_extra=1"
    chardevs = _after(argv, "-chardev")
    assert len(chardevs) == 2
    assert all(c.startswith("pipe,") for c in chardevs)
    assert _after(argv, "-accel") == ["tcg"]
    assert "-cpu" not in argv
    assert "-dtb" not in argv


def test_kvm(x86):
    argv = build_argv(x86, BOOT, CHAN, "kvm")
    assert _after(argv, "-accel") == ["kvm"]
    assert _after(argv, "-cpu") == ["host"]
    i = argv.index("-accel")
    assert argv[i:i + 4] == ["-accel", "kvm", "-cpu", "host"]


def test_tcg_cpu_smp_dtb_and_extra_args(x86):
    prof = dataclasses.replace(x86, cpu="max", smp=2, extra_args=("-device", "virtio-rng-pci"))
    argv = build_argv(prof, BootSpec(Path("/k"), Path("/i"), dtb=Path("/d/board.dtb")), CHAN, "tcg")
    assert _after(argv, "-cpu") == ["max"]
    assert _after(argv, "-smp") == ["2"]
    assert _after(argv, "-dtb") == ["/d/board.dtb"]
    assert argv[-2:] == ["-device", "virtio-rng-pci"]
    # with kvm the profile's cpu gives way to -cpu host
    assert _after(build_argv(prof, BOOT, CHAN, "kvm"), "-cpu") == ["host"]


def test_kernel_cmdline(x86):
    assert kernel_cmdline(x86) == "console=ttyS0 panic=-1 kh_cmd=hvc0 quiet"
    bare = dataclasses.replace(x86, append="")
    assert kernel_cmdline(bare, "") == "console=ttyS0 panic=-1 kh_cmd=hvc0"
    assert kernel_cmdline(bare, "a=b c") == "console=ttyS0 panic=-1 kh_cmd=hvc0 a=b c"


def test_real_profile_append_is_passed_through(monkeypatch):
    monkeypatch.setattr(qemu.shutil, "which", lambda name: QEMU)
    prof = get_target("x86_64")
    (append,) = _after(build_argv(prof, BOOT, CHAN, "tcg"), "-append")
    assert append == f"console=ttyS0 panic=-1 kh_cmd=hvc0 {prof.append}".rstrip()


def test_qemu_missing(monkeypatch):
    monkeypatch.setattr(qemu.shutil, "which", lambda name: None)
    with pytest.raises(InfraError) as ei:
        qemu_binary(get_target("x86_64"))
    assert ei.value.message == "qemu-system-x86_64 is not installed"
    with pytest.raises(InfraError):
        build_argv(get_target("x86_64"), BOOT, CHAN, "tcg")


def test_reproducer_round_trips(x86):
    argv = build_argv(x86, BootSpec(Path("/k dir/vmlinux"), Path("/i")), CHAN, "tcg")
    line = reproducer(argv)
    assert shlex.split(line) == argv
    assert "'/k dir/vmlinux'" in line
