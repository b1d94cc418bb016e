"""The host's architecture decides what is native and what is cross, never a hard-coded amd64:
checked with a faked ``uname -m`` (hostarch.machine, what platform.machine() says on Linux)."""

from __future__ import annotations

import platform

import pytest

from kharness import hostarch, hostdeps
from kharness.errors import InfraError
from kharness.hostcc import gcc_package, libc_package
from kharness.targets import all_targets


@pytest.fixture
def host(monkeypatch):
    def fake(machine: str) -> None:
        monkeypatch.setattr(hostarch, "machine", lambda: machine)
    return fake


def test_the_real_machine_is_platform_s():
    assert hostarch.machine() == platform.machine()


@pytest.mark.parametrize("machine,arch", [("x86_64", "amd64"), ("aarch64", "arm64"), ("ppc64le", "ppc64el"),
                                          ("armv7l", "armhf")])
def test_debian_arch_of_the_host(host, machine, arch):
    host(machine)
    assert hostarch.debian_arch() == arch


def test_an_unknown_host_is_one_line_with_the_fix(host):
    host("sparc64")
    with pytest.raises(InfraError) as ei:
        hostarch.debian_arch()
    assert ei.value.message == "kharness does not know the Debian architecture of a sparc64 host"
    # the profiles still load: every target is cross there
    assert all_targets()["x86_64"].cross_compile == "x86_64-linux-gnu-"


def test_on_an_amd64_host_x86_64_is_native_and_the_rest_cross(host):
    host("x86_64")
    t = all_targets()
    assert {n: p.cross_compile for n, p in t.items()} == {
        "arm64": "aarch64-linux-gnu-", "ppc64": "powerpc64-linux-gnu-", "ppc64le": "powerpc64le-linux-gnu-",
        "rpi2": "arm-linux-gnueabihf-", "rpi3": "aarch64-linux-gnu-", "x86_64": ""}
    assert (gcc_package(t["x86_64"]), libc_package(t["x86_64"])) == ("gcc", "libc6-dev")
    assert hostdeps.libc_file(t["x86_64"]) == "/usr/lib/x86_64-linux-gnu/libc.a"
    assert hostdeps.libc_file(t["arm64"]) == "/usr/aarch64-linux-gnu/lib/libc.a"


def test_on_an_arm64_host_arm64_is_native_and_x86_64_cross(host):
    host("aarch64")
    t = all_targets()
    assert t["arm64"].cross_compile == t["rpi3"].cross_compile == ""
    assert t["x86_64"].cross_compile == "x86_64-linux-gnu-"
    assert t["rpi2"].cross_compile == "arm-linux-gnueabihf-"
    # Debian's package names: no "_" (x86_64-linux-gnu-gcc is in gcc-x86-64-linux-gnu)
    assert (gcc_package(t["x86_64"]), libc_package(t["x86_64"])) == ("gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross")
    assert (gcc_package(t["arm64"]), libc_package(t["arm64"])) == ("gcc", "libc6-dev")
    assert hostdeps.libc_file(t["x86_64"]) == "/usr/x86_64-linux-gnu/lib/libc.a"
    assert hostdeps.libc_file(t["arm64"]) == "/usr/lib/aarch64-linux-gnu/libc.a"
    pkgs = hostdeps.all_packages()
    assert {"gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross", "qemu-system-x86"} <= set(pkgs)
    assert "gcc-aarch64-linux-gnu" not in pkgs and "libc6-dev-arm64-cross" not in pkgs


def test_kvm_is_tried_only_for_the_host_s_own_architecture(host):
    from kharness.vm.accel import kvm_possible

    host("aarch64")
    t = all_targets()
    ok, why = kvm_possible(t["x86_64"])
    assert (ok, why) == (False, "KVM not possible: host is aarch64, guest is x86_64")
    ok, why = kvm_possible(t["arm64"])
    assert "not possible" not in why    # decided by /dev/kvm now, not by the architecture
