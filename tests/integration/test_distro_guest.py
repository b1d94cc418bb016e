"""``--guest debian``: the same kernel booted with a Debian root filesystem (systemd, udev,
modprobe, sshd) and driven over SSH with paramiko. Real boots: the first run saves the ready guest,
the next ones restore it. x86_64 is in `make test`; arm64 (a rootfs configured inside an emulated
guest the first time) is in `make test-distro` (KH_DISTRO_GRID=1)."""

from __future__ import annotations

import json
import os

import pytest

from conftest import EXAMPLES, FIXTURES, require_series

pytestmark = pytest.mark.vm

GRID = os.environ.get("KH_DISTRO_GRID") == "1"
# Every target with a distro guest in the grid (each foreign root is configured in a first boot
# the first time: minutes to tens of minutes under TCG).
TARGETS = ["x86_64"] + (["arm64", "rpi3", "rpi2", "ppc64le"] if GRID else [])


@pytest.mark.timeout(3600)   # the first run builds the root filesystem (and, foreign, configures it)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", ["hello", "chardev-ioctl", "sysfs"])
def test_an_example_passes_in_a_debian_guest(kharness, target, example):
    require_series(target, "6.1")
    r = kharness("run", str(EXAMPLES / example), "--target", target, "--guest", "debian")
    assert r.rc == 0, (r.result and r.result["summary"], r.stderr[-2000:])
    res = r.result
    assert res["guest"]["kind"] == "debian" and res["guest"]["suite"] == "bookworm"
    assert res["guest"]["ssh_port"] > 1024
    assert all(c["status"] == "pass" for c in res["checks"]) and res["checks"]
    assert "SSH ready" in r.phase("boot")["message"]


@pytest.mark.timeout(2400)
def test_a_modules_udev_rule_sets_its_device_nodes_mode(kharness):
    require_series("x86_64", "6.1")
    r = kharness("run", str(FIXTURES / "udev_mode"), "--guest", "debian")
    assert r.rc == 0, (r.result and r.result["summary"], r.stderr[-2000:])
    assert "udev rules installed: 99-khudev.rules" in r.phase("boot")["log"]
    check = r.result["checks"][0]
    assert check["status"] == "pass" and check["stdout"].strip() == "666 video"


@pytest.mark.timeout(2400)
def test_without_udev_the_rule_is_not_applied(kharness):
    """The test above can fail: the busybox guest has no udev, and the node keeps the kernel's 0600."""
    require_series("x86_64", "6.1")
    r = kharness("run", str(FIXTURES / "udev_mode"))
    assert r.rc == 1 and r.result["checks"][0]["status"] == "fail"
    assert r.result["checks"][0]["stdout"].startswith("600 ")


@pytest.mark.timeout(2400)
def test_a_panic_in_a_debian_guest_is_seen_on_its_console(kharness):
    """sshd dies with the kernel: the panic comes from the serial console, as in the busybox guest."""
    require_series("x86_64", "6.1")
    r = kharness("run", str(FIXTURES / "init_panic"), "--guest", "debian")
    assert r.rc == 1, r.result and r.result["summary"]
    assert r.result["summary"].startswith("load: kernel panic"), r.result["summary"]
    assert "panic" in r.kinds()
    # The console is at log level 8 as in the busybox guest: the module's pr_info before its
    # panic is on record too (under `quiet` only the panic itself would be).
    assert "init_panic: about to panic" in json.dumps(r.result)


def test_a_bad_package_name_is_refused_before_anything_is_built(kharness):
    r = kharness("run", str(EXAMPLES / "hello"), "--guest", "debian", "--guest-packages", "v4l-utils,$(reboot)")
    assert r.rc == 2
    assert "$(reboot)" in (r.stderr + (r.result or {}).get("summary", ""))
