"""The ioctl kind with the module's own header: requests by macro, payloads by field name laid
out by the target's compiler, arguments by value (parse, validate, command, judge), and
kh-agent's by-value form (its host half, and the x86_64 build run natively)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from kharness import agent_client as agent
from kharness import checks
from kharness.checks import STEP_CURSOR, command_for, judge, parse_check
from kharness.checks.kinds import ioctl
from kharness.errors import UsageError
from kharness.hw import cprobe
from kharness.hw.agent import build_agent, parse_reply
from kharness.targets import get_target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chardev-ioctl"
MSG = {"flag": 1, "a": 0x12345678, "b": 0xBEEF, "c": 0x1122334455667788, "text": "kharness"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    cprobe.forget()


@pytest.fixture
def mod(tmp_path):
    """A module directory with khdemo's header, and its kharness.toml's path."""
    d = tmp_path / "mod"
    (d / "include").mkdir(parents=True)
    shutil.copy(EXAMPLE / "khdemo_ioctl.h", d / "khdemo_ioctl.h")
    (d / "include" / "extra.h").write_text("#define KH_EXTRA_NR 9\n")
    return d / "kharness.toml"


def check(path: Path, **table):
    return parse_check(path, 1, {"kind": "ioctl", "device": "/dev/khdemo", **table})


def err(path: Path, **table) -> str:
    with pytest.raises(UsageError) as e:
        check(path, **table)
    return str(e.value)


def validate(path: Path, c, target: str) -> None:
    checks.validate_for_run(path, (c,), get_target(target), params=set(), gpio_lines=None)


# --- parse -----------------------------------------------------------------------------------------

def test_header_paths_are_resolved_against_the_module_directory(mod):
    c = check(mod, header="khdemo_ioctl.h", include_dirs=["include"], request="KH_SET",
              payload_struct="struct   kh_msg", payload={"flag": 1, "text": "hi"})
    assert c.headers == (str(mod.parent / "khdemo_ioctl.h"),)
    assert c.include_dirs == (str(mod.parent / "include"),)
    assert c.payload_struct == "struct kh_msg" and c.payload == (("flag", 1), ("text", "hi"))
    c2 = check(mod, headers=["khdemo_ioctl.h", "include/extra.h"], request="_IO(KH_MAGIC, KH_EXTRA_NR)")
    assert len(c2.headers) == 2


@pytest.mark.parametrize("table, needle", [
    ({"header": "nope.h", "request": "KH_SET"}, "'header': nope.h does not exist"),
    ({"header": "khdemo_ioctl.h", "headers": ["khdemo_ioctl.h"], "request": "KH_SET"}, "'header' or 'headers', not both"),
    ({"header": "include", "request": "KH_SET"}, "must name C header files"),
    ({"include_dirs": ["khdemo_ioctl.h"], "request": "KH_SET"}, "'include_dirs' must name directories"),
    ({"request": "KH_SET; int x"}, "'request': 'KH_SET; int x' is not a single-line C expression (it holds ;)"),
    ({"request": "KH_SET // x"}, "is not a single-line C expression"),
    ({"request": "#include <x>"}, "is not a single-line C expression"),
    ({"request": "KH_SET\nKH_GET"}, "is not a single-line C expression"),
    ({"request": True}, "'request' is required"),
    ({"request": "KH_SET", "payload": {"flag": 1}}, "a 'payload' table names fields of a struct: add payload_struct"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": [["u8", 1]]},
     "with payload_struct, give 'payload' as a table by field name"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg; x"}, "'payload_struct': 'struct kh_msg; x' is not a struct name"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": {"a-b": 1}}, "'a-b' is not a field name"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": {"flag": True}}, "field flag of struct kh_msg needs"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "expect_out": {"text": 1.5}}, "needs an integer, a string"),
    ({"request": "KH_NTH", "arg": "2"}, "'arg' must be an integer"),
    ({"request": "KH_NTH", "arg": 2, "payload": [["u8", 1]]}, "'arg' passes an integer by value: it cannot go with payload"),
    ({"request": "KH_NTH", "arg": 2, "payload_struct": "struct kh_msg", "expect_out": {"flag": 1}},
     "cannot go with expect_out, payload_struct"),
])
def test_parse_errors(mod, table, needle):
    assert needle in err(mod, **table)


def test_parse_needs_no_compiler(mod, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the compiler ran at parse time")

    monkeypatch.setattr(cprobe, "probe", boom)
    check(mod, header="khdemo_ioctl.h", request="KH_GET", payload_struct="struct kh_msg", expect_out={"flag": "*"})


# --- validate: what the target's compiler says ------------------------------------------------------

@pytest.mark.parametrize("table, needle", [
    ({"request": "KH_NOPE"}, "on ppc64: khdemo_ioctl.h does not define KH_NOPE"),
    ({"request": "_IOWR('k', 3, struct kh_nope)"}, "does not define struct kh_nope (in '_IOWR('k', 3, struct kh_nope)')"),
    ({"request": "KH_SET", "payload_struct": "struct kh_nope", "payload": {"x": 1}},
     "on ppc64: khdemo_ioctl.h does not define struct kh_nope"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": {"nope": 1}}, "struct kh_msg has no field nope"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": {"text": "x" * 16}},
     "'request'/'payload' on ppc64: struct kh_msg field text (char array of 16 bytes): 'xxxxxxxxxxxxxxxx' (16 bytes) "
     "does not fit with its terminating NUL"),
    ({"request": "KH_SET", "payload_struct": "struct kh_msg", "payload": {"b": -1}}, "b (unsigned 2-byte integer): -1 does not fit"),
    ({"request": "KH_GET", "payload_struct": "struct kh_msg", "expect_out": {"a": 1 << 32}}, "a (unsigned 4-byte integer)"),
])
def test_validate_errors_name_the_check_and_the_problem(mod, table, needle):
    c = check(mod, header="khdemo_ioctl.h", **table)
    with pytest.raises(UsageError) as e:
        validate(mod, c, "ppc64")
    assert str(e.value).startswith(f"{mod}: check #1 (ioctl /dev/khdemo): ") and needle in str(e.value)
    assert "\n" not in str(e.value)


def test_arg_must_fit_the_targets_word(mod):
    c = check(mod, header="khdemo_ioctl.h", request="KH_NTH", arg=1 << 40)
    validate(mod, c, "x86_64")
    with pytest.raises(UsageError, match=r"'arg' 1099511627776 does not fit in the 32-bit argument"):
        validate(mod, c, "rpi2")
    validate(mod, check(mod, header="khdemo_ioctl.h", request="KH_NTH", arg=-(1 << 31)), "rpi2")


# --- command: numbers and bytes for the target -------------------------------------------------------

def test_command_by_macro_and_field_name_per_target(mod):
    c = check(mod, header="khdemo_ioctl.h", request="KH_XFORM", payload_struct="struct kh_msg", payload=MSG,
              expect_out={"flag": 0, "a": "*"})
    be = command_for(c, {}, get_target("ppc64"))
    le = command_for(c, {}, get_target("rpi2"))
    be_bytes = ("01000000" "12345678" "beef000000000000" "1122334455667788" + b"kharness".hex() + "00" * 8)
    le_bytes = ("01000000" "78563412" "efbe000000000000" "8877665544332211" + b"kharness".hex() + "00" * 8)
    assert be == STEP_CURSOR + f"kh-agent ioctl /dev/khdemo 0xc0286b03 {be_bytes} 40"
    assert le == STEP_CURSOR + f"kh-agent ioctl /dev/khdemo 0xc0286b03 {le_bytes} 40"


def test_a_struct_without_payload_passes_a_zeroed_struct(mod):
    c = check(mod, header="khdemo_ioctl.h", request="KH_GET", payload_struct="struct kh_msg")
    assert command_for(c, {}, get_target("x86_64")).endswith(f"0x80286b02 {'00' * 40} 40")


def test_the_legacy_form_may_take_its_size_from_the_struct(mod):
    c = check(mod, header="khdemo_ioctl.h", request="_IOW('k', 1, payload)", payload_struct="struct kh_msg",
              payload={"flag": 1})
    assert " 0x80286b01 01" in command_for(c, {}, get_target("ppc64"))


def test_by_value(mod):
    c = check(mod, header="khdemo_ioctl.h", request="KH_NTH", arg=2, expect_ret=97)
    assert command_for(c, {}, get_target("ppc64")) == STEP_CURSOR + "kh-agent ioctl /dev/khdemo 0x20006b05 =2 0"
    assert command_for(c, {}, get_target("x86_64")) == STEP_CURSOR + "kh-agent ioctl /dev/khdemo 0x6b05 =2 0"
    n = check(mod, request=0x540B, arg=-1)           # no header needed for a number
    assert command_for(n, {}, get_target("rpi2")).endswith("0x540b =-1 0")
    assert judge(c, 0, "ret=97 errno=0 out=\n", "", {}, get_target("ppc64")) == []
    assert judge(c, 0, "ret=-1 errno=EINVAL out=\n", "", {}, get_target("ppc64")) == \
        ["ioctl returned -1 (EINVAL), expected 97"]


def test_an_expression_without_a_header(mod):
    c = check(mod, request="_IOW(100, 0, char *)")
    assert command_for(c, {}, get_target("x86_64")).endswith("0x40086400 - 0")
    assert command_for(c, {}, get_target("rpi2")).endswith("0x40046400 - 0")
    assert command_for(c, {}, get_target("ppc64")).endswith("0x80086400 - 0")


def test_command_reuses_the_answers_of_validate(mod, monkeypatch):
    c = check(mod, header="khdemo_ioctl.h", request="KH_SET", payload_struct="struct kh_msg", payload=MSG)
    validate(mod, c, "ppc64")
    runs = []
    real = cprobe.proc.run
    monkeypatch.setattr(cprobe.proc, "run", lambda *a, **k: runs.append(a) or real(*a, **k))
    command_for(c, {}, get_target("ppc64"))
    judge(c, 0, "ret=0 errno=0 out=" + "00" * 40, "", {}, get_target("ppc64"))
    assert runs == []


# --- judge -----------------------------------------------------------------------------------------

def test_judging_fields_by_name(mod):
    t = get_target("ppc64")
    c = check(mod, header="khdemo_ioctl.h", request="KH_GET", payload_struct="struct kh_msg",
              expect_out={"flag": 1, "a": "*", "text": "kharness", "c": 0x1122334455667788})
    good = ("01000000" "deadbeef" "0000000000000000" "1122334455667788" + b"kharness".hex() + "00" * 8)
    assert judge(c, 0, f"ret=0 errno=0 out={good}\n", "", {}, t) == []
    bad = ("00000000" "deadbeef" "0000000000000000" "8877665544332211" + b"KHARNESS".hex() + "00" * 8)
    assert judge(c, 0, f"ret=0 errno=0 out={bad}\n", "", {}, t) == [
        "field flag is 0, expected 1", "field text is 'KHARNESS', expected 'kharness'",
        f"field c is {0x8877665544332211}, expected {0x1122334455667788}"]
    assert judge(c, 0, "ret=0 errno=0 out=0100\n", "", {}, t) == \
        ["the argument came back with 2 bytes; sizeof(struct kh_msg) is 40"]
    assert judge(c, 0, "ret=-1 errno=ENOTTY out=\n", "", {}, t) == ["ioctl returned -1 (ENOTTY), expected 0"]


# --- the Session's way in ---------------------------------------------------------------------------

def test_make_takes_the_session_arguments(mod):
    h = mod.parent / "khdemo_ioctl.h"
    c = ioctl.make("/dev/khdemo", "KH_XFORM", {"a": 21}, ["a", "text"], headers=[h], payload_struct="struct kh_msg")
    assert c.expect_out == (("a", "*"), ("text", "*"))
    t = get_target("rpi2")
    assert ioctl.out_values(c, bytes([0, 0, 0, 0, 42, 0, 0, 0]) + bytes(16) + b"ABC" + bytes(13), t) == \
        {"a": 42, "text": "ABC"}
    v = ioctl.make("/dev/khdemo", "KH_NTH", headers=[h], arg=0)
    assert v.arg == 0 and command_for(v, {}, t).endswith("=0 0")
    old = ioctl.make("/dev/k", "_IOR('k', 2, payload)", out=[["u8", 0], ["u32", 0]])
    assert ioctl.out_values(old, bytes([1, 0, 0, 0, 7, 0, 0, 0]), t) == [1, 7]
    with pytest.raises(UsageError, match=r"^ioctl /dev/khdemo: 'arg' passes an integer by value"):
        ioctl.make("/dev/khdemo", "KH_NTH", payload=[["u8", 1]], arg=1)


# --- kh-agent's by-value argument ------------------------------------------------------------------

def test_agent_commands_by_value():
    assert agent.ioctl("/dev/k", 0x6B05, arg=5) == "kh-agent ioctl /dev/k 0x6b05 =5 0"
    assert agent.ioctl("/dev/k", 0x6B05, arg=-3) == "kh-agent ioctl /dev/k 0x6b05 =-3 0"
    assert agent.step_ioctl(0x6B05, arg=7) == "i:6b05:=7:0"
    assert agent.step_ioctl(0x6B05, b"\x01", 1) == "i:6b05:01:1"
    with pytest.raises(ValueError, match="no payload and no output"):
        agent.ioctl("/dev/k", 1, b"\x01", arg=1)
    with pytest.raises(ValueError, match="no payload and no output"):
        agent.step_ioctl(1, out_len=4, arg=1)


native = pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None
                            or not os.path.exists("/dev/ptmx"), reason="runs kh-agent natively on x86_64")


@native
def test_kh_agent_passes_the_integer_itself():
    """TCFLSH (0x540B) takes its argument by value: 0-2 are valid queue selectors, anything else
    (a pointer included) is EINVAL, so only a by-value 2 succeeds."""
    exe = str(build_agent(get_target("x86_64")))

    def run(*args):
        p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout

    assert parse_reply(run("ioctl", "/dev/ptmx", "540b", "=2", "0")[1]) == {"ret": 0, "errno": "0", "out": b""}
    assert parse_reply(run("ioctl", "/dev/ptmx", "540b", "=0x1", "0")[1])["ret"] == 0
    assert parse_reply(run("ioctl", "/dev/ptmx", "540b", "=7", "0")[1])["errno"] == "EINVAL"
    assert parse_reply(run("ioctl", "/dev/ptmx", "540b", "=-1", "0")[1])["errno"] == "EINVAL"
    assert parse_reply(run("ioctl", "/dev/ptmx", "540b", "02", "0")[1])["errno"] == "EINVAL"   # a pointer
    rc, out = run("session", "/dev/ptmx", "rw", "i:540b:=1:0", "i:540b:=9:0")
    assert out.splitlines()[1:] == ["step=1 op=ioctl ret=0 errno=0 data=", "step=2 op=ioctl ret=-1 errno=EINVAL data="]
    for bad in ("=", "=x", "=1x", "=0x", "=99999999999999999999", "=--1"):
        assert run("ioctl", "/dev/ptmx", "540b", bad, "0")[0] == 2, bad
    assert run("ioctl", "/dev/ptmx", "540b", "=1", "4")[0] == 2     # by value has no output
