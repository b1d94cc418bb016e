"""Unit tests for kharness.targets: the TOML target profiles in images/."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kharness.errors import UsageError
from kharness.paths import data_dir
from kharness.targets import TargetProfile, _load, all_targets, get_target

PROFILES = sorted(data_dir("images").glob("*.toml"))


def test_there_are_profiles():
    assert [p.name for p in PROFILES][:1] and "x86_64.toml" in [p.name for p in PROFILES]


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_loads(path):
    prof = _load(path)
    assert isinstance(prof, TargetProfile)
    assert prof.name == path.stem
    assert prof.source == path
    assert prof.endian in ("little", "big")
    assert prof.bits in (32, 64)
    assert prof.kernel_boot in ("image", "pvh-vmlinux", "vmlinux")
    assert prof.series and all(isinstance(s, str) for s in prof.series)
    assert isinstance(prof.series, tuple)
    assert isinstance(prof.console_args, tuple) and isinstance(prof.command_args, tuple)
    assert "kh_con" in " ".join(prof.console_args)
    assert "kh_cmd" in " ".join(prof.command_args)
    assert prof.memory_mb > 0 and prof.smp >= 1
    assert prof.cross_prefix == prof.cross_compile
    hash(prof)  # frozen, all tuples: hashable


def test_x86_64_profile_values():
    p = get_target("x86_64")
    assert (p.debian_arch, p.kernel_flavour, p.kernel_arch, p.cross_compile) == ("amd64", "amd64", "x86", "")
    assert p.series == ("5.10", "6.1", "6.12", "7.2")
    assert (p.qemu, p.machine, p.memory_mb, p.console, p.command_tty) == (
        "qemu-system-x86_64", "pc", 256, "ttyS0", "hvc0")
    assert p.console_args == ("-serial", "chardev:kh_con")
    # commands on a virtio console: an 8250's FIFO held transfers to ~100 KB/s
    assert p.command_args == ("-device", "virtio-serial-pci", "-device", "virtconsole,chardev=kh_cmd")
    assert p.channel_rate >= 1_000_000
    assert (p.kernel_boot, p.kvm_host_arch) == ("pvh-vmlinux", "x86_64")
    assert "quiet" in p.append.split()  # the rest of the command line is tuning that may change
    assert (p.cpu, p.smp, p.dtb, p.extra_args, p.guest_modules) == (None, 1, None, (), ("virtio_pci", "virtio_console"))


def test_all_targets_keys():
    assert sorted(all_targets()) == sorted(p.stem for p in PROFILES)


def _minimal(**extra) -> str:
    base = {
        "name": '"toy"', "description": '"a toy"', "debian_arch": '"amd64"', "kernel_flavour": '"amd64"',
        "series": '["6.1"]', "kernel_arch": '"x86"', "cross_compile": '""', "endian": '"little"', "bits": "64",
        "qemu": '"qemu-system-x86_64"', "machine": '"pc"', "memory_mb": "128", "console": '"ttyS0"',
        "command_tty": '"ttyS1"', "console_args": '["-serial", "chardev:kh_con"]',
        "command_args": '["-serial", "chardev:kh_cmd"]',
    }
    base.update(extra)
    return "".join(f"{k} = {v}\n" for k, v in base.items())


def test_load_minimal_profile_defaults(tmp_path):
    f = tmp_path / "toy.toml"
    f.write_text(_minimal(extra_args='["-device", "x"]'))
    p = _load(f)
    assert p.name == "toy"
    assert p.extra_args == ("-device", "x")
    assert (p.kernel_boot, p.cpu, p.smp, p.dtb, p.append, p.guest_modules, p.notes) == (
        "image", None, 1, None, "", (), "")
    assert p.source == f
    # source does not take part in equality
    assert dataclasses.replace(p, source=Path("/elsewhere")) == p


def test_unknown_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(_minimal(memory="128", qemu_bin='"x"'))
    with pytest.raises(UsageError) as ei:
        _load(f)
    assert ei.value.message == f"{f}: unknown keys ['memory', 'qemu_bin']"


def test_missing_required_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text(_minimal().replace('machine = "pc"\n', ""))
    with pytest.raises(TypeError):
        _load(f)


def test_get_target_unknown():
    with pytest.raises(UsageError) as ei:
        get_target("nope")
    assert ei.value.message == "unknown target 'nope'"
    assert ei.value.hint == f"known targets: {', '.join(sorted(p.stem for p in PROFILES))}"
    assert "x86_64" in str(ei.value)
