"""A run's verdict without QEMU: ``Run(opts, guest_factory=...)`` with the fake guest
(kharness/testing/fake_guest.py) replaying what a real 6.1 guest answered. Only the build and
image phases' functions are replaced (no compiler, no kernel download); everything from the boot
look on is the real runner: commands, health looks, findings, verdict.

tests/integration/test_run_x86_64.py runs the same fixtures on a real kernel.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import plan, runner
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.kernels.resolve import KernelSpec
from kharness.testing.fake_guest import FakeGuest, Rule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
RELEASE = "6.1.0-50-amd64"
BOOT_LOG = ("<5>[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\n"
            "<6>[    2.261358] clocksource: Switched to clocksource tsc\n")
OUT_OF_TREE = 4096 | 8192   # O and E: what loading any module built here sets


@pytest.fixture
def no_build(tmp_path, monkeypatch):
    """The build and image phases stand-ins: a 'built' module, a cached kernel and image."""
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    spec = KernelSpec(RELEASE, "6.1", "bookworm", "6.1.176-1", (), (), "gcc-12")
    monkeypatch.setattr(runner, "qemu_binary", lambda profile: "qemu-system-x86_64")
    monkeypatch.setattr(plan.GuestPlan, "resolve", lambda self: (spec, None))
    monkeypatch.setattr(runner, "ensure_headers", lambda spec: SimpleNamespace())
    monkeypatch.setattr(runner, "pick_toolchain", lambda profile, spec: SimpleNamespace(
        version="gcc 12.2.0", note="", sysroot=None))

    def kbuild(build_plan, headers, tc):
        (name,) = [m.name for m in build_plan.modules]   # what the real build would make
        ko = tmp_path / f"{name}.ko"
        ko.write_bytes(b"\x7fELF fake module")
        return BuildOutcome(ok=True, modules=[BuiltModule(name, ko, f"{RELEASE} SMP preempt mod_unload", {})],
                            diagnostics=[], log="", duration=0.0, cached=True, command=["make"], build_dir=tmp_path)

    monkeypatch.setattr(runner, "run_kbuild", kbuild)
    monkeypatch.setattr(plan.GuestPlan, "image", lambda self, spec, built: (
        SimpleNamespace(kernel=tmp_path / "vmlinuz"),
        SimpleNamespace(path=tmp_path / "base.cpio.gz", key="0123", busybox={"name": "busybox-static"}), None))
    monkeypatch.setattr(runner, "write_run_initrd", lambda base, payload, dest: dest)


def _run(module: str, guest: FakeGuest):
    opts = runner.RunOptions(module_dir=FIXTURES / module, cold=True, accel="tcg")
    return runner.Run(opts, guest_factory=lambda *args: guest).execute()


def test_init_returning_enodev_fails_the_load(no_build):
    guest = FakeGuest([Rule(r"^insmod /kh/init_enodev\.ko$", rc=1, taint=OUT_OF_TREE,
                            stderr="insmod: can't insert '/kh/init_enodev.ko': No such device\n",
                            kernel_log="<4>[    4.652644] init_enodev: loading out-of-tree module taints kernel.")],
                      kernel_log=BOOT_LOG, release=RELEASE)
    r = _run("init_enodev", guest)
    assert (r.status, r.summary.split(":")[0]) == ("fail", "load")
    load = r.phase("load")
    assert load.status == "fail" and "No such device" in load.message
    assert [p.status for p in r.phases][:3] == ["pass", "pass", "pass"]    # build, image, boot
    assert not [f for f in r.findings if _get(f, "blocking")]              # no kernel report, no bad taint
    assert guest.closed                                                   # torn down
    assert guest.commands[0].endswith("; kh-agent health")                # the boot look came first


def test_the_same_module_passes_when_its_init_succeeds(no_build):
    """The test above can fail: with a clean insmod the verdict is a pass."""
    guest = FakeGuest(kernel_log=BOOT_LOG, release=RELEASE)
    r = _run("init_enodev", guest)
    assert r.status == "pass", r.summary
    assert [c for c in guest.commands if c.startswith(("insmod", "rmmod"))] == \
        ["insmod /kh/init_enodev.ko", "rmmod init_enodev"]


def _get(finding, key):
    return finding[key] if isinstance(finding, dict) else getattr(finding, key)
