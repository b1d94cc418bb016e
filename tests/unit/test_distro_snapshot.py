"""When a distro guest is restored and when it boots, without a boot: the profile's say, --cold,
and how long a restored guest may take to answer SSH before it is given up."""

from __future__ import annotations

import pytest

from kharness.runner import distro_snapshot
from kharness.runner.boot import restore_limit
from kharness.targets import get_target


@pytest.mark.parametrize("target, restores", [("x86_64", True), ("arm64", True),
                                              ("rpi3", False), ("rpi2", False), ("ppc64le", False)])
def test_which_targets_restore_a_distro_guest(target, restores):
    # The Pis: QEMU cannot save usb-net. pseries: a restored guest's timers stall until a command
    # repairs them, and sshd needs them before it lets one in.
    p = get_target(target)
    assert (p.snapshot and p.distro_snapshot) is restores


def test_a_restore_is_given_up_well_before_the_boot_timeout(monkeypatch):
    import kharness.runner.boot as boot

    monkeypatch.setattr(boot, "_public", lambda: type("P", (), {"host_load": staticmethod(lambda: (0.5, 2))}))
    limit = distro_snapshot.restore_deadline(300.0)
    assert limit == distro_snapshot.RESTORE_SSH_FACTOR * restore_limit(300.0, (0.5, 2))[0]
    assert 10 < limit < 300
    assert distro_snapshot.restore_deadline(20.0) == 20.0   # never beyond --boot-timeout
