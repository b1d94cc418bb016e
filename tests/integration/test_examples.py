"""The exercise examples, for real: x86_64, big-endian ppc64 and 32-bit rpi2 in `make test`;
`make test-examples` (KH_EXAMPLE_GRID=1) runs them on every target and every kernel series it has."""

from __future__ import annotations

import os
import tomllib

import pytest

from conftest import EXAMPLES, require_series

pytestmark = pytest.mark.vm


def _cells():
    if not os.environ.get("KH_EXAMPLE_GRID"):
        return [(t, "6.1") for t in ("x86_64", "ppc64", "rpi2")]
    from kharness.targets import all_targets, get_target
    return [(t, s) for t in sorted(all_targets()) for s in get_target(t).series]


@pytest.mark.parametrize("target,series", _cells())
@pytest.mark.parametrize("example", ["sysfs", "procfs-deque", "chardev-ioctl", "gpio-button-led"])
def test_exercise_examples(kharness, example, target, series):
    require_series(target, series)
    o = kharness("run", str(EXAMPLES / example), "--target", target, "--kernel", series,
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
