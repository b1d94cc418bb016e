"""parse_address: what `--remote` accepts, and one clear line for what it does not."""

from __future__ import annotations

import getpass

import pytest

from kharness.errors import UsageError
from kharness.vm.ssh import SshAddress, parse_address


@pytest.mark.parametrize("text, want", [
    ("pi@raspberrypi.local", SshAddress("pi", "raspberrypi.local", 22)),
    ("pi@raspberrypi.local:2222", SshAddress("pi", "raspberrypi.local", 2222)),
    ("root@127.0.0.1:10022", SshAddress("root", "127.0.0.1", 10022)),
    ("root@[::1]:2222", SshAddress("root", "::1", 2222)),
    ("root@[fe80::1%eth0]", SshAddress("root", "fe80::1%eth0", 22)),
    ("build_user.x@board-1", SshAddress("build_user.x", "board-1", 22)),
])
def test_good_addresses(text, want):
    assert parse_address(text) == want


def test_a_bare_host_is_the_local_user():
    assert parse_address("board:2200") == SshAddress(getpass.getuser(), "board", 2200)


def test_str_is_what_messages_show():
    assert str(parse_address("root@[::1]:2222")) == "root@[::1]:2222"
    assert str(parse_address("pi@board")) == "pi@board:22"


@pytest.mark.parametrize("text", [
    "", " ", "pi@", "@host", "pi@host:", "pi@host:0", "pi@host:65536", "pi@host:22x", "pi@::1",
    "pi@[::1", "pi@[::1]x", "pi@[::1]:", "pi@[host]:22", "pi@ho st", "pi@host;reboot", "p i@host",
    "pi@-host", "pi@host.", "pi@$(reboot)",
])
def test_bad_addresses_are_one_line_usage_errors(text):
    with pytest.raises(UsageError) as e:
        parse_address(text)
    assert "\n" not in str(e.value) and e.value.hint
