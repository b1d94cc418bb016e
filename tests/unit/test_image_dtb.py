"""Device-tree fixups on a real DTB compiled with dtc (device-tree-compiler)."""

import shutil
import subprocess

import pytest

from kharness.errors import UsageError
from kharness.image.dtb import prepare_dtb

pytestmark = pytest.mark.skipif(shutil.which("dtc") is None or shutil.which("fdtput") is None,
                                reason="device-tree-compiler not installed (make install)")

DTS = """/dts-v1/;
/ { soc { serial@7e215040 { status = "disabled"; }; }; };
"""


def _dtb(tmp_path):
    d = tmp_path / "boards"
    d.mkdir()
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(d / "board.dtb")], input=DTS.encode(), check=True)
    return d


def test_fixup_enables_the_node_on_a_cached_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    d = _dtb(tmp_path)
    out = prepare_dtb(d, "board.dtb", (("/soc/serial@7e215040", "status", "okay"),), "r")
    assert out != d / "board.dtb"
    got = subprocess.run(["fdtget", str(out), "/soc/serial@7e215040", "status"], capture_output=True, text=True)
    assert got.stdout.strip() == "okay"
    orig = subprocess.run(["fdtget", str(d / "board.dtb"), "/soc/serial@7e215040", "status"], capture_output=True, text=True)
    assert orig.stdout.strip() == "disabled"  # the kernel package's tree is never modified
    assert prepare_dtb(d, "board.dtb", (("/soc/serial@7e215040", "status", "okay"),), "r") == out


def test_no_fixups_uses_the_packaged_tree(tmp_path):
    d = _dtb(tmp_path)
    assert prepare_dtb(d, "board.dtb", (), "r") == d / "board.dtb"


def test_missing_tree_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="ships no device tree nope.dtb"):
        prepare_dtb(tmp_path, "nope.dtb", (), "6.1.0-50-armmp")
