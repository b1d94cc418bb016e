"""When a distro guest is restored and when it boots, without a boot: the profile's say, --cold,
and how long a restored guest may take to answer SSH before it is given up."""

from __future__ import annotations

from pathlib import Path

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


def test_the_restore_command_line_quotes_the_state_file():
    args = distro_snapshot.incoming_args(Path("/cache dir/it's/state.bin"))
    assert args == ("-incoming", "exec:cat '/cache dir/it'\"'\"'s/state.bin'")


def test_a_saved_guest_needs_both_its_disk_and_its_whole_state(tmp_path):
    import json

    d = tmp_path / "snap"
    d.mkdir()
    (d / distro_snapshot.DISK).write_bytes(b"d" * 10)
    (d / distro_snapshot.STATE).write_bytes(b"s" * 20)
    (d / "meta.json").write_text(json.dumps({"size": 10, "state_size": 20}))
    assert distro_snapshot._usable(d)
    (d / distro_snapshot.STATE).write_bytes(b"s" * 19)      # cut short
    assert not distro_snapshot._usable(d)
    (d / distro_snapshot.STATE).unlink()
    assert not distro_snapshot._usable(d)


def test_an_uncompressed_bundle_stays_small_enough_for_one_request():
    import re

    from kharness.runner.boot import UNCOMPRESSED_BUNDLE_MAX

    src = (Path(distro_snapshot.__file__).parent.parent / "hw" / "agent" / "kh-agent.c").read_text()
    max_len = 1 << int(re.search(r"#define MAX_LEN \(1UL << (\d+)\)", src).group(1))   # kh-agent's limit
    assert UNCOMPRESSED_BUNDLE_MAX * 4 / 3 < max_len / 2
