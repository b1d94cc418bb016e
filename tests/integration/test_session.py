"""The Python API (kharness.session) on a real guest: every operation against real modules."""

from __future__ import annotations

import os

import pytest

from conftest import EXAMPLES, FIXTURES
from kharness.session import GuestOSError, RunFailed, session

pytestmark = pytest.mark.vm
KW = dict(kernel="6.1", boot_timeout=600, timeout=120)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("KHARNESS_PROGRESS", "0")


@pytest.mark.parametrize("target", ["x86_64", "ppc64"])
def test_chardev_ioctl_files_and_dmesg(target):
    with session(EXAMPLES / "chardev-ioctl", target=target, **KW) as s:
        assert "khdemo: /dev/khdemo ready" in s.dmesg.since()
        with s.chardev.open("/dev/khdemo") as dev:
            assert dev.write("hello") == 5
            assert dev.read(64) == b"hello"
            assert dev.read(64) == b""
            assert dev.seek(1) == 1 and dev.read(2) == b"el"
            with pytest.raises(GuestOSError) as e:
                dev.open_other()               # exclusive open
            assert e.value.errno == "EBUSY"
        fields = [["u8", 1], ["u32", 305419896], ["u16", 4660], ["u64", 1234605616436508552], ["char[16]", "py"]]
        assert s.ioctl("/dev/khdemo", "_IOW('k', 1, payload)", payload=fields).ret == 0
        got = s.ioctl("/dev/khdemo", "_IOR('k', 2, 40)", out=fields)
        assert (got.ret, got.errno, got.out) == (0, "0", [f[1] for f in fields])
        bad = s.ioctl("/dev/khdemo", "_IO('k', 99)")
        assert (bad.ret, bad.errno) == (-1, "ENOTTY")
        assert s.sizeof(fields) == 40
        assert "khdemo" in s.proc.read("/proc/misc")
        with pytest.raises(GuestOSError) as e:
            s.sysfs.write("/sys/module/khdemo/initstate", "x")
        assert e.value.errno in ("EACCES", "EIO", "EPERM")
        assert s.check({"kind": "dmesg", "expect": "khdemo: set flag=1"}).status == "fail"  # not since the last step
    assert s.result.status == "pass" and s.result.phase("unload").status == "pass"


def test_gpio_from_python():
    with session(EXAMPLES / "gpio-button-led", **KW) as s:
        assert s.gpio.base == 0 and s.values["gpio.17"] == "17"
        assert s.gpio.direction(4) == "out" and s.gpio.get(4) == 0
        assert s.gpio.pulse(17, 5, interval_ms=1) == 5
        assert s.gpio.get(4) == 1
        assert s.gpio.set(17, 1) == 1 and s.gpio.set(17, 0) == 0
        assert s.gpio.get(4) == 0
        toggles = s.gpio.events(4)                # the LED followed every press, in order
        assert [lvl for _, _, lvl in toggles][-6:] == [1, 0, 1, 0, 1, 0]
        assert all(a[0] <= b[0] for a, b in zip(toggles, toggles[1:]))
        # six presses: what the example's [unload] expect_dmesg asks for
        assert s.sysfs.read("/sys/module/gpio_button_led/parameters/presses").strip() == "6"
        with pytest.raises(GuestOSError) as e:
            s.gpio.set(4, 1)                   # an output: the module drives it, not the harness
        assert e.value.errno == "EPERM"
    assert s.result.gpio == {"controller": "khgpio", "base": 0, "lines": 32}


def test_a_kernel_report_at_unload_fails_the_session():
    with pytest.raises(RunFailed) as e:
        with session(FIXTURES / "exit_bug", **KW) as s:
            s.run("true")
    r = e.value.result
    assert r.status == "fail" and r.phase("unload").status == "fail"
    assert not any(os.path.basename(p).startswith("kharness-run-") and str(os.getpid()) in p
                   for p in os.listdir("/tmp"))
