"""pytest tests for the pytest_demo module, with the kharness plugin's fixtures.

    pytest examples/pytest/tests                                  # x86_64, default kernel
    pytest examples/pytest/tests --kh-target x86_64,ppc64 --kh-kernel 6.1 -n 2

The tests of this file share one guest per target x kernel (the module loaded once); a test
marked kh_fresh gets a guest of its own. A kernel oops or WARN during a test fails it.
"""

import pytest

from kharness.session import GuestOSError

PROC = "/proc/pytest_demo"


def test_loaded(kh_module, dmesg):
    assert kh_module.name == "pytest_demo"
    assert "pytest_demo: /proc/pytest_demo created" in dmesg.since()


def test_write_then_read(proc):
    proc.write(PROC, "hello from pytest")
    assert proc.read(PROC).splitlines()[0] == "hello from pytest"


def test_too_long_is_einval(proc):
    with pytest.raises(GuestOSError) as e:
        proc.write(PROC, "x" * 129)
    assert e.value.errno == "EINVAL"


def test_one_open_file_two_writes(chardev, proc):
    with chardev.open(PROC) as f:
        f.write("one")
        f.write("two")
    assert proc.read(PROC).startswith("two\n")


@pytest.mark.kh_fresh
def test_a_fresh_guest_starts_empty(proc):
    assert proc.read(PROC) == "empty\nwrites: 0\n"


@pytest.mark.kh_targets("ppc64")
def test_only_on_big_endian_power(kh_guest):
    assert kh_guest.target.endian == "big"
