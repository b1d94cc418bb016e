"""The kernel's own modules, loaded as a module needs them (issue #15): from its modinfo
``depends:``, from ``[module] requires`` (with parameters), and refused by name before boot when
the target's kernel does not ship one. Real builds, real kernels, real boots."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, FIXTURES, require_series

# videodev (and mc, which it needs) ships as a module in Debian's 6.1 for each of these
# (docs/kernel-modules.md); ppc64's self-built kernel has neither.
V4L2_TARGETS = ["x86_64", "arm64", "ppc64le", "rpi2"]


def _deps(o, key: str) -> list[dict]:
    deps = (o.result or {}).get("dependencies") or {}
    assert key in deps, (key, deps)
    return deps[key]


def _passed(o) -> None:
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert [p["status"] for p in o.result["phases"]] == ["pass"] * 6
    assert o.result["checks"] and all(c["status"] == "pass" for c in o.result["checks"]), o.result["checks"]
    assert not o.kinds()


@pytest.mark.parametrize("target", V4L2_TARGETS)
def test_modinfo_depends_loads_videodev(kharness, target):
    """No kharness.toml dependency: modinfo says videodev; videodev and mc load first, in
    modules.dep order, and the driver answers VIDIOC_QUERYCAP through them."""
    require_series(target, "6.1")
    o = kharness("run", str(FIXTURES / "v4l2_dep"), "--target", target, "--kernel", "6.1",
                 "--boot-timeout", "600", "--timeout", "120")
    _passed(o)
    assert o.result["modules"][0]["modinfo"]["depends"] == ["videodev"]
    chain = _deps(o, "v4l2_dep")
    assert [(d["name"], d["soft"], d["status"]) for d in chain] == [
        ("mc", False, "loaded"), ("videodev", False, "loaded")]
    assert chain[1]["wanted_by"] == "v4l2_dep" and chain[0]["wanted_by"] == "videodev"


def test_restored_snapshot_gets_the_dependencies(kharness):
    """The dependencies travel with the run, not with the image: a run restored from the ready
    snapshot loads them too, without a cold boot."""
    require_series("x86_64", "6.1")
    kharness("run", str(FIXTURES / "v4l2_dep"))          # makes the snapshot if there is none
    o = kharness("run", str(FIXTURES / "v4l2_dep"))
    _passed(o)
    assert o.result["boot_mode"] == "snapshot", o.result["boot_mode_note"]
    assert [d["name"] for d in _deps(o, "v4l2_dep")] == ["mc", "videodev"]


def test_i2c_stub_example_passes_on_x86_64(kharness):
    """examples/i2c-stub-sensor: i2c-stub (chip_addr=0x48) and i2c-dev by name; the driver binds
    to a device on the stub, reads registers preset with i2cset, writes one i2cget reads back."""
    require_series("x86_64", "6.1")
    o = kharness("run", str(EXAMPLES / "i2c-stub-sensor"))
    _passed(o)
    assert len(o.result["checks"]) == 16
    chain = _deps(o, "khtemp")
    assert [(d["name"], d["status"], d["params"]) for d in chain] == [
        ("i2c_stub", "loaded", ["chip_addr=0x48"]), ("i2c_dev", "loaded", [])]


def test_requires_with_modinfo_depends_and_softdeps_on_x86_64(kharness):
    """needs_scsi_debug: scsi_mod from modinfo, scsi_debug (dev_size_mb=8) by name, and what
    scsi_debug needs, crc-t10dif's soft dependencies included (one may fail under TCG: that is
    not the module's failure)."""
    require_series("x86_64", "6.1")
    o = kharness("run", str(FIXTURES / "needs_scsi_debug"))
    _passed(o)
    chain = _deps(o, "needs_scsi_debug")
    hard = [d["name"] for d in chain if not d["soft"]]
    assert sorted(hard) == ["crc_t10dif", "crct10dif_common", "scsi_common", "scsi_debug", "scsi_mod"], chain
    at = hard.index   # each after what it needs (modules.dep)
    assert at("scsi_common") < at("scsi_mod") < at("scsi_debug")
    assert at("crct10dif_common") < at("crc_t10dif") < at("scsi_debug")
    assert chain[-1]["name"] == "scsi_debug" and chain[-1]["params"] == ["dev_size_mb=8"]
    assert all(d["status"] == "loaded" for d in chain if not d["soft"]), chain
    assert all(d["status"] in ("loaded", "failed") for d in chain if d["soft"]), chain


@pytest.mark.parametrize("fixture,missing", [
    (FIXTURES / "needs_scsi_debug", "needs_scsi_debug needs `scsi_debug`"),
    (EXAMPLES / "i2c-stub-sensor", "khtemp needs `i2c-stub`"),
], ids=["needs_scsi_debug", "i2c-stub-sensor"])
def test_dependency_absent_on_arm64_is_named_before_boot(kharness, fixture, missing):
    """Debian's arm64 kernel has no scsi_debug and no i2c-stub: exit 2 with one line naming the
    module and the kernel, and nothing booted."""
    require_series("arm64", "6.1")
    o = kharness("run", str(fixture), "--target", "arm64", "--kernel", "6.1")
    assert o.rc == 2, (o.stdout, o.stderr)
    assert f"{missing}, which 6.1 for arm64 does not ship" in o.stderr
    assert o.stderr.count("kharness: error:") == 1 and "Traceback" not in o.stderr
    assert o.result["status"] == "error" and o.result["error"]["kind"] == "usage"
    phases = {p["name"]: p["status"] for p in o.result["phases"]}
    assert phases["boot"] == phases["load"] == "skipped", phases
