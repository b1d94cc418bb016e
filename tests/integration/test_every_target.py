"""Every target boots a real kernel and runs examples/hello (issue: every target, every series)."""

from __future__ import annotations

import pytest

from conftest import EXAMPLES, archive_series, require_series

pytestmark = pytest.mark.vm

# (target, kernel, expected QEMU binary, release suffix, endianness/word size noted in the profile)
CASES = [
    ("arm64", "6.1", "qemu-system-aarch64", "-arm64"),
    ("rpi3", "6.1", "qemu-system-aarch64", "-arm64"),
    ("rpi2", "6.1", "qemu-system-arm", "-armmp"),
    ("ppc64le", "6.1", "qemu-system-ppc64", "-powerpc64le"),
    ("ppc64", "6.1", "qemu-system-ppc64", "-kharness"),
]


@pytest.mark.parametrize("target,kernel,qemu,suffix", CASES, ids=[c[0] for c in CASES])
def test_hello_on_every_target(kharness, target, kernel, qemu, suffix):
    require_series(target, kernel)
    o = kharness("run", str(EXAMPLES / "hello"), "--target", target, "--kernel", kernel,
                 "--boot-timeout", "600")
    assert o.rc == 0, (o.stdout, o.stderr)
    r = o.result
    assert r["target"] == target
    assert r["kernel"]["release"].startswith(kernel + ".") and r["kernel"]["release"].endswith(suffix)
    assert qemu in r["reproducer"]["qemu"]
    assert r["accelerator"] == "tcg"  # never KVM across architectures
    assert all(c["status"] == "pass" for c in r["checks"])
    assert "hello: goodbye" in r["dmesg"]["unload"]


def test_arm64_newest_series(kharness):
    require_series("arm64", "6.12")
    o = kharness("run", str(EXAMPLES / "hello"), "--target", "arm64", "--kernel", "6.12")
    assert o.rc == 0, (o.stdout, o.stderr)
    assert o.result["kernel"]["series"] == "6.12"


def test_unknown_combination_lists_what_exists(kharness):
    o = kharness("run", str(EXAMPLES / "hello"), "--target", "ppc64le", "--kernel", "5.10")
    assert o.rc == 2
    # what the archive offers ppc64el (never a 5.10: bullseye has no ppc64el), not a fixed list
    assert f"series 5.10 is not in the archive; it offers: {', '.join(archive_series('ppc64le'))}" in o.stderr
