"""The exercise examples, for real: x86_64, big-endian ppc64 and 32-bit rpi2."""

from __future__ import annotations

import tomllib

import pytest

from conftest import EXAMPLES

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("target", ["x86_64", "ppc64", "rpi2"])
@pytest.mark.parametrize("example", ["sysfs", "procfs-deque", "chardev-ioctl", "gpio-button-led"])
def test_exercise_examples(kharness, example, target):
    o = kharness("run", str(EXAMPLES / example), "--target", target, "--kernel", "6.1",
                 "--boot-timeout", "600", "--timeout", "120")
    assert o.rc == 0, (o.stdout, o.stderr)
    declared = tomllib.loads((EXAMPLES / example / "kharness.toml").read_text())["check"]
    checks = o.result["checks"]
    assert len(checks) == len(declared)
    ran = [c for c in checks if c["status"] != "skipped"]
    assert len(ran) >= 9 and all(c["status"] == "pass" for c in ran)
    # Only checks meant for other boards are skipped.
    for c, d in zip(checks, declared):
        assert (c["status"] == "skipped") == (target not in d.get("targets", [target])), c["name"]
    assert o.result["phases"][5]["status"] == "pass"  # unloaded cleanly
