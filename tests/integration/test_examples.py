"""The exercise examples, for real: x86_64, big-endian ppc64 and 32-bit rpi2."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("target", ["x86_64", "ppc64", "rpi2"])
@pytest.mark.parametrize("example", ["sysfs", "procfs-deque", "chardev-ioctl"])
def test_exercise_examples(kharness, example, target):
    o = kharness("run", str(EXAMPLES / example), "--target", target, "--kernel", "6.1",
                 "--boot-timeout", "600", "--timeout", "120")
    assert o.rc == 0, (o.stdout, o.stderr)
    checks = o.result["checks"]
    assert len(checks) >= 10 and all(c["status"] == "pass" for c in checks)
    assert o.result["phases"][5]["status"] == "pass"  # unloaded cleanly
