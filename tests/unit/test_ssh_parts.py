"""The SSH guest's pure parts: the command wrapping, the probe reply, /dev/kmsg records as dmesg
lines, the marker that carries a command's process group."""

from __future__ import annotations

import subprocess

import pytest

from kharness.vm import ssh_exec
from kharness.vm.ssh import RemoteFacts, parse_probe
from kharness.vm.ssh_log import kmsg_to_dmesg


def test_probe_reply_big_endian_32_bit():
    assert parse_probe("6.1.0-27-powerpc\nppc\n 7f 45 4c 46 01 02\n") == RemoteFacts(
        "6.1.0-27-powerpc", "ppc", "big", 32)
    assert parse_probe("6.12.1\naarch64\n 7f 45 4c 46 01 01\n") == RemoteFacts("6.12.1", "aarch64", "little", 32)


@pytest.mark.parametrize("reply", ["", "6.1\nx86_64\n", "6.1\nx86_64\n 00 00 00 00 02 01\n",
                                   "6.1\nx86_64\n 7f 45 4c 46 03 01\n"])
def test_a_probe_reply_that_says_nothing_is_refused(reply):
    with pytest.raises(ValueError):
        parse_probe(reply)


def test_kmsg_records_read_as_dmesg_lines():
    assert kmsg_to_dmesg("6,339,5140900,-;hello: loaded") == "[    5.140900] hello: loaded"
    assert kmsg_to_dmesg("4,1,123456789012,c,caller=T1;a;b") == "[123456.789012] a;b"
    assert kmsg_to_dmesg(" SUBSYSTEM=acpi") is None
    assert kmsg_to_dmesg("[    1.000000] already dmesg") == "[    1.000000] already dmesg"


@pytest.mark.parametrize("command", ["echo 'it'\"'\"'s'; echo $HOME", "printf '%s\\n' \"$(pwd)\"", "exit 7"])
@pytest.mark.parametrize("root", [True, False])
def test_the_wrapped_command_is_the_command_in_sh_after_the_marker(command, root, tmp_path):
    line = ssh_exec.wrap(command, root, "/nonexistent dir")
    assert line.startswith("sh -c " if root else "sudo -n sh -c ")
    if not root:
        line = line[len("sudo -n "):]
    got = subprocess.run(["sh", "-c", line], capture_output=True, start_new_session=True, timeout=30)
    want = subprocess.run(["sh", "-c", command], capture_output=True, cwd="/", timeout=30)
    pg, started, err = ssh_exec.split_marker(got.stderr)
    assert started and pg is not None and pg > 1
    assert (got.returncode, got.stdout, err) == (want.returncode, want.stdout, want.stderr)


def test_the_marker_is_found_after_what_sudo_says_first():
    assert ssh_exec.split_marker(b"sudo: unable to resolve host b\n\x1eKHPG 4242\nerr\n") == (4242, True, b"err\n")
    assert ssh_exec.split_marker(b"sudo: a password is required\n") == (None, False,
                                                                         b"sudo: a password is required\n")


def test_no_process_group_below_2_is_ever_killed():
    class Dead:   # a transport kill_group must not even touch
        def is_active(self):
            raise AssertionError("touched")
    for pg in (None, 0, 1):
        ssh_exec.kill_group(Dead(), pg, True)
    assert ssh_exec.kill_line(4242, True) == "sh -c 'kill -KILL -4242'"
