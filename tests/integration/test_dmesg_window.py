"""A dmesg check's first window starts at the load step, not at boot (issue 13, item 14): on a
real x86_64 kernel, booted cold and restored from the ready snapshot. The fixture's first check
forbids "Linux version" (the first line of every boot log) and expects the module's load line."""

from __future__ import annotations

from conftest import FIXTURES

MODULE = FIXTURES / "dmesg_window"


def _assert_windows(o) -> None:
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    first, second = o.result["checks"]
    assert first["status"] == "pass" and "dmesg_window: loaded" in first["stdout"]
    assert "Linux version" not in first["stdout"]
    assert second["status"] == "pass"
    # the boot phase itself still kept the boot log
    assert "Linux version" in o.result["dmesg"]["boot"]


def test_first_dmesg_window_starts_at_the_load_after_a_cold_boot(kharness):
    o = kharness("run", str(MODULE), "--kernel", "6.1", "--cold")
    assert o.result["boot_mode"] == "cold"
    _assert_windows(o)


def test_first_dmesg_window_starts_at_the_load_after_a_restore(kharness):
    for _ in range(2):   # the first run may have to save the snapshot; the second restores it
        o = kharness("run", str(MODULE), "--kernel", "6.1")
        _assert_windows(o)
        if o.result["boot_mode"] == "snapshot":
            break
    assert o.result["boot_mode"] == "snapshot", o.result["boot_mode_note"]
