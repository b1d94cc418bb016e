"""The Guest protocol (kharness/guest.py): the QEMU guest and the fake guest both implement it,
with the same signatures; the fake guest replays what it is scripted to."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from kharness import agent_client as agent
from kharness.guest import Bootable, ConsoleSideChannel, Guest
from kharness.targets import get_target
from kharness.testing.fake_guest import FakeGuest, Rule
from kharness.vm import machine
from kharness.vm.errors import CommandTimeout, GuestDied, GuestError
from kharness.vm.qemu import BootSpec

PROTOCOLS = (Guest, ConsoleSideChannel, Bootable)


def _members(proto) -> list[str]:
    return sorted(n for n in vars(proto) if not n.startswith("_") and callable(getattr(proto, n)))


def _qemu_guest(tmp_path: Path) -> machine.Guest:
    # Only built, never started: no QEMU runs.
    return machine.Guest(get_target("x86_64"), BootSpec(tmp_path / "k", tmp_path / "i", None), tmp_path)


@pytest.mark.parametrize("proto", PROTOCOLS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("impl", ["qemu", "fake"])
def test_each_guest_implements_each_protocol_with_its_signatures(proto, impl, tmp_path):
    guest = _qemu_guest(tmp_path) if impl == "qemu" else FakeGuest()
    assert isinstance(guest, proto)
    for name in _members(proto):
        want = inspect.signature(getattr(proto, name))
        got = inspect.signature(getattr(type(guest), name))
        assert list(want.parameters) == list(got.parameters), (impl, name)
        assert [p.default for p in want.parameters.values()] == [p.default for p in got.parameters.values()], \
            (impl, name)


def test_the_protocol_is_not_satisfied_by_just_anything():
    class OnlyRuns:
        def run(self, command, timeout): ...
    assert not isinstance(OnlyRuns(), Guest)
    assert not isinstance(object(), ConsoleSideChannel)


def test_a_qemu_guest_that_never_started_has_an_empty_console(tmp_path):
    assert _qemu_guest(tmp_path).console_text() == ""


# --- the fake guest ---------------------------------------------------------------------------------

def test_fake_guest_emulates_kh_agent_health_and_cursors():
    g = FakeGuest(kernel_log="[    0.1] Linux version 6.1\n", char_devices={"mem": "1"})
    g.run(agent.boot_look(), 5)
    g.run("insmod /kh/hello.ko greeting=hi", 5)
    g.print_kernel("<6>[    5.0] hello: loaded")
    assert g.dmesg_since(agent.SESSION_CURSOR, 5) == "<6>[    5.0] hello: loaded\n"   # moved at boot
    look = g.health(5)
    assert look.modules == {"hello"} and look.char_devices == {"mem": "1"} and look.taint == 0
    assert look.log == "<6>[    5.0] hello: loaded\n"
    assert g.health(5).log == ""
    assert g.run("rmmod hello", 5).rc == 0 and g.health(5).modules == frozenset()


def test_fake_guest_rules_replay_replies_errors_and_kernel_text():
    oops = "[    4.7] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    g = FakeGuest([Rule(r"^insmod /kh/bad\.ko", rc=137, stderr="Killed\n", kernel_log=oops, taint=1 << 7),
                   Rule(r"^cat /proc/greeting$", stdout="hi\n", times=1)])
    r = g.run("insmod /kh/bad.ko", 5)
    assert (r.rc, r.stderr) == (137, "Killed\n")
    assert "NULL pointer" in g.health(5).log and g.health(5).taint == 128
    assert "NULL pointer" in g.console_text()
    assert g.run("cat /proc/greeting", 5).stdout == "hi\n"
    r = g.run("cat /proc/greeting", 5)                  # the rule is used up: nothing scripted
    assert r.rc == 127 and "no rule" in r.stderr


def test_fake_guest_runs_and_skips_like_sh():
    g = FakeGuest([Rule(r"^false$", rc=1)], kernel_log="<6>[ 1.0] booted")
    r = g.run("false && kh-agent dmesg-since x; kh-agent dmesg-since y", 5)
    assert r.rc == 0 and r.stdout == "<6>[ 1.0] booted\n"          # only y ran
    assert g.commands == ["false && kh-agent dmesg-since x; kh-agent dmesg-since y"]
    assert g.dmesg_since("x", 5) == "<6>[ 1.0] booted\n" and g.dmesg_since("y", 5) == ""


def test_a_hung_fake_guest_stays_hung_and_answers_on_the_console():
    g = FakeGuest([Rule(r"^insmod", raises=CommandTimeout("insmod did not finish within 5s"))],
                  module_states={"stuck": "coming"}, sysrq_text="sysrq: Show Blocked State\n")
    with pytest.raises(CommandTimeout):
        g.run("insmod /kh/stuck.ko", 5)
    with pytest.raises(CommandTimeout):
        g.run("kh-agent health", 5)
    assert g.module_state("stuck") == "coming" and g.module_state("other") == "gone"
    assert "Blocked State" in g.sysrq("lw")


def test_a_dead_fake_guest_stays_dead():
    g = FakeGuest([Rule(r"^insmod", raises=GuestDied("the kernel panicked", "Kernel panic - not syncing", panic=True))])
    with pytest.raises(GuestDied) as e:
        g.run("insmod /kh/p.ko", 5)
    assert e.value.panic
    with pytest.raises(GuestDied):
        g.run("true", 5)


def test_put_file_reaches_the_fake_guest_byte_exact():
    g = FakeGuest()
    big = bytes(range(256)) * 1000 + b"end"
    g.put_file("/kh/small.ko", b"\x7fELF", 5)
    g.put_file("/kh/big.ko", os.urandom(70_000) + big, 5)   # in pieces
    assert g.files["/kh/small.ko"] == b"\x7fELF"
    assert g.files["/kh/big.ko"].endswith(big)
    g.rules.append(Rule(r"gunzip > /kh/full", rc=1, stderr="gunzip: write error: No space left on device\n"))
    with pytest.raises(GuestError, match="No space left"):
        g.put_file("/kh/full", b"x", 5)
