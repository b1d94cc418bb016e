"""kharness.agent_client: the kh-agent commands the harness sends, and the parsers of their
replies. Some replies come from the real kh-agent, compiled for this host (as
test_hw_agent.py does); the health record is checked against docs/protocol.md's layout."""

from __future__ import annotations

import base64
import gzip
import platform
import random
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kharness import agent_client as agent
from kharness.agent_client import HEALTH_SEP, HealthLook
from kharness.image.initramfs import bundle

ROOT = Path(__file__).resolve().parents[2]


def test_health_record_parses_into_a_typed_look():
    reply = (f"12289\n{HEALTH_SEP}<4>[    1.0] WARNING: x\n<6>[    1.1] y\n{HEALTH_SEP}hello\nkhgpio\n"
             f"{HEALTH_SEP}1 mem\n4 tty\n4 ttyS\n240 khdemo\n240 dup\n")
    look = agent.parse_health(reply)
    assert look.taint == 12289
    assert look.log == "<4>[    1.0] WARNING: x\n<6>[    1.1] y\n"
    assert look.modules == {"hello", "khgpio"}
    # first major wins for a name; "4 tty" and "4 ttyS" are two devices
    assert look.char_devices == {"mem": "1", "tty": "4", "ttyS": "4", "khdemo": "240", "dup": "240"}


@pytest.mark.parametrize("reply, taint, log", [
    ("", 0, ""),                                   # a guest that died before answering
    ("4096\n", 4096, ""),                          # ... or after the first section
    (f"garbage\n{HEALTH_SEP}line\n", None, "line\n"),   # an unreadable taint is unknown, not 0
])
def test_a_short_or_damaged_health_record(reply, taint, log):
    look = agent.parse_health(reply)
    assert (look.taint, look.log, look.modules, look.char_devices) == (taint, log, frozenset(), {})


def test_format_health_is_the_inverse_of_parse_health():
    look = HealthLook(512, "<6>[ 2.0] a\n", frozenset({"m1", "m2"}), {"khdemo": "240"})
    assert agent.parse_health(agent.format_health(look)) == look


def test_the_boot_look_moves_the_check_and_session_cursors_then_looks():
    assert agent.boot_look() == ("kh-agent dmesg-since step >/dev/null && kh-agent dmesg-since python >/dev/null; "
                                 "kh-agent health")
    assert agent.STEP_CURSOR == "kh-agent dmesg-since step >/dev/null 2>&1; "
    assert agent.dmesg_since(agent.SESSION_CURSOR) == "kh-agent dmesg-since python"


@pytest.mark.parametrize("bad", ["a b", "x;reboot", "", "../x"])
def test_a_cursor_is_one_word(bad):
    with pytest.raises(ValueError):
        agent.dmesg_since(bad)


def test_restored_takes_an_epoch_and_a_hex_seed_only():
    assert agent.restored(1700000000, "00ff") == "kh-agent restored 1700000000 00ff"
    assert agent.restored(1, "ab", template="sleep 30; " + agent.RESTORED_CMD) == "sleep 30; kh-agent restored 1 ab"
    with pytest.raises(ValueError):
        agent.restored(1, "ab; reboot")


def test_paths_are_quoted_for_the_shell():
    cmd = agent.write("/proc/a b'c", b"\x00\xff")
    assert shlex.split(cmd) == ["kh-agent", "write", "/proc/a b'c", "00ff"]
    assert agent.write("/proc/x", b"").endswith(" -")
    assert shlex.split(agent.ioctl("/dev/k d", 0xC0046B01, b"\x01", 4)) == \
        ["kh-agent", "ioctl", "/dev/k d", "0xc0046b01", "01", "4"]
    assert shlex.split(agent.session("/dev/x y", "rw", [agent.step_write(b"hi"), agent.step_read(2), agent.CLOSE])) \
        == ["kh-agent", "session", "/dev/x y", "rw", "w:6869", "r:2", "close"]
    assert agent.hold("/dev/k", "r", "/tmp/kh-hold-1") == "mkdir -p /tmp/kh-hold-1 && kh-agent hold /dev/k r /tmp/kh-hold-1"
    assert agent.hold_step("/tmp/kh-hold-1", agent.step_ioctl(0x6b01, b"", 8)) == \
        "echo i:6b01:-:8 > /tmp/kh-hold-1/in && cat /tmp/kh-hold-1/out"


def test_last_reply_reads_the_last_line():
    assert agent.last_reply("noise\nret=3 errno=0 data=616263\n") == {"ret": 3, "errno": "0", "data": b"abc"}
    assert agent.last_reply("  \n") == {}


def test_khgpio_commands_and_replies():
    assert agent.khgpio_load(["insmod", "/kh/khgpio.ko", "ngpio=8"]) == \
        "insmod /kh/khgpio.ko ngpio=8 && kh-agent cat /sys/kernel/debug/khgpio/base"
    assert agent.khgpio_load(["kh-agent", "insmod", "/kh/khgpio.ko", "ngpio=8"]) == \
        "kh-agent insmod /kh/khgpio.ko ngpio=8 && kh-agent cat /sys/kernel/debug/khgpio/base"
    assert agent.cat("/sys/x y") == "kh-agent cat '/sys/x y'"
    assert agent.parse_khgpio_base("512\n") == 512
    with pytest.raises((ValueError, IndexError)):
        agent.parse_khgpio_base("insmod: can't insert\n")
    assert agent.parse_khgpio_step("irqs=2 level=1 direction=in\n") == {"irqs": 2, "level": 1, "direction": "in"}
    assert agent.parse_khgpio_step("") is None
    assert agent.parse_khgpio_events("100 3 1\nbad\n200 3 0\n") == [(100, 3, 1), (200, 3, 0)]


@pytest.mark.parametrize("size", [10, 300_000])
def test_put_file_command_writes_its_stdin_exactly(size, tmp_path):
    data = random.Random(size).randbytes(size)
    dest = tmp_path / "new dir" / "m.ko"
    # run it with the host's shell, as the guest's busybox would
    subprocess.run(["sh", "-c", agent.put_file_command(str(dest))], input=gzip.compress(data), check=True)
    assert dest.read_bytes() == data


def test_a_bundle_unpacks_with_tar_programs_executable(tmp_path):
    files = {"hello.ko": b"\x7fELF module", "bin/test": b"\x7fELF program", "bin/sub/x": b"x"}
    data = bundle(files)
    assert bundle(dict(reversed(files.items()))) == data          # deterministic
    subprocess.run(["sh", "-c", agent.unpack_command(str(tmp_path / "kh"))], input=data, check=True)
    for name, content in files.items():
        assert (tmp_path / "kh" / name).read_bytes() == content
    assert (tmp_path / "kh/bin/test").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "kh/hello.ko").stat().st_mode & 0o111 == 0


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "bin/../../x"])
def test_a_bundle_keeps_every_file_under_the_payload_directory(name):
    with pytest.raises(ValueError, match="must stay under"):
        bundle({name: b""})


# --- against the real kh-agent -------------------------------------------------------------------
native = pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None,
                            reason="needs gcc for x86_64")


@pytest.fixture(scope="module")
def kh_agent(tmp_path_factory):
    out = tmp_path_factory.mktemp("agent") / "kh-agent"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(ROOT / "kharness/hw/agent/kh-agent.c")], check=True)
    return out


@native
def test_commands_built_here_are_ones_kh_agent_accepts(kh_agent, tmp_path):
    f = tmp_path / "f i'le"
    f.write_bytes(b"")

    def sh(cmd: str) -> str:
        p = subprocess.run(["sh", "-c", cmd.replace("kh-agent ", f"{shlex.quote(str(kh_agent))} ")],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert agent.last_reply(sh(agent.write(str(f), b"abc"))) == {"ret": 3, "errno": "0"}
    assert agent.last_reply(sh(agent.read(str(f), 10))) == {"ret": 3, "errno": "0", "data": b"abc"}
    lines = sh(agent.session(str(f), "rw", [agent.step_seek(1), agent.step_read(5), agent.CLOSE])).splitlines()
    assert [agent.parse_reply(x)["op"] for x in lines] == ["open", "seek", "read", "close"]
    assert agent.parse_reply(lines[2])["data"] == b"bc"


def test_the_spec_names_every_kh_agent_operation():
    """docs/protocol.md is the specification: every operation kh-agent.c dispatches is in it."""
    source = (ROOT / "kharness/hw/agent/kh-agent.c").read_text()
    ops = set(re.findall(r'strcmp\(op, "([a-z-]+)"\)', source))
    spec = (ROOT / "docs/protocol.md").read_text()
    assert ops and {op for op in ops if f"`{op}" not in spec} == set()
    for marker in ("@@KH@@", "sysrq-<key>", "kh-initstate-<nonce>-<module>", "KH-READY", "KHO", "KHR", "KHE"):
        assert marker in spec
