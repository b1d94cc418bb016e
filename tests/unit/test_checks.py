"""The check language: parsing (clear errors naming file, check and field), commands, judging."""

from pathlib import Path

import pytest

from kharness.checks import STEP_CURSOR, Check, command_for, errno_of, judge, parse_check, values_for
from kharness.errors import UsageError

P = Path("/m/kharness.toml")


def err(table) -> str:
    with pytest.raises(UsageError) as e:
        parse_check(P, 3, table)
    return str(e.value)


def test_run_is_the_default_kind():
    c = parse_check(P, 1, {"run": "true"})
    assert (c.kind, c.name, c.repeat) == ("run", "true", 1)


def test_proc_read_and_write():
    r = parse_check(P, 1, {"kind": "proc", "path": "/proc/deque", "expect": "1 2\n"})
    assert (r.kind, r.path, r.expect, r.write) == ("proc", "/proc/deque", "1 2\n", None)
    w = parse_check(P, 2, {"kind": "proc", "path": "/proc/deque", "write": "-1", "expect_errno": "EINVAL",
                           "repeat": 3})
    assert (w.write, w.expect_errno, w.repeat) == ("-1", "EINVAL", 3)


@pytest.mark.parametrize("table,needle", [
    ({"kind": "gpoi", "path": "/x"}, "unknown check kind 'gpoi'"),
    ({"kind": "proc", "path": "/sys/x"}, "a proc path must start with /proc/"),
    ({"kind": "sysfs"}, "'path' is required for a sysfs check"),
    ({"kind": "file", "path": "rel/x"}, "'path' must be absolute"),
    ({"kind": "proc", "path": "/proc/x", "expect_errno": "EINVAL"}, "'expect_errno' applies to a write"),
    ({"kind": "proc", "path": "/proc/x", "write": "1", "expect_errno": "ENOPE"}, "must be an errno name"),
    ({"kind": "dmesg"}, "a dmesg check needs 'expect' or 'forbid'"),
    ({"kind": "dmesg", "forbid": "("}, "'forbid' is not a valid regular expression"),
    ({"kind": "proc", "path": "/proc/x", "run": "ls"}, "unknown key(s) ['run'] for a proc check"),
    ({"run": "true", "repeat": 0}, "'repeat' must be an integer from 1 to 10000"),
    ({"name": "n"}, "give 'run' (a shell command) or a 'kind'"),
])
def test_errors_name_file_check_and_field(table, needle):
    msg = err(table)
    assert msg.startswith("/m/kharness.toml: check #3")
    assert needle in msg


def test_commands_mark_the_step_and_quote():
    v = values_for(["deque"], {"deque": {"cap": "4"}})
    assert command_for(Check("r", "run", run="echo {param.cap} ${HOME} {x}"), v) == STEP_CURSOR + "echo 4 ${HOME} {x}"
    # Writes go through kh-agent (one write() of exactly the bytes, the errno named whatever the
    # guest's shell): the value as hex, the path quoted.
    assert command_for(Check("w", "proc", path="/proc/{module}", write="a b"), v) == \
        STEP_CURSOR + "kh-agent redirect /proc/deque 612062"
    assert command_for(Check("w", "proc", path="/proc/x", write="-n"), v) == STEP_CURSOR + "kh-agent redirect /proc/x 2d6e"
    assert command_for(Check("w", "proc", path="/proc/x y", write=""), v) == STEP_CURSOR + "kh-agent redirect '/proc/x y' -"
    assert command_for(Check("c", "sysfs", path="/sys/x y"), v) == STEP_CURSOR + "kh-agent cat '/sys/x y'"
    assert command_for(Check("d", "dmesg", expect="x"), v) == "kh-agent dmesg-since step"


def test_unknown_token_is_a_usage_error():
    with pytest.raises(UsageError, match=r"\{param.nope\} is not known"):
        command_for(Check("r", "run", run="echo {param.nope}"), values_for(["m"], {}))


def test_errno_from_busybox_messages():
    assert errno_of("sh: write error: Invalid argument\n") == "EINVAL"
    assert errno_of("sh: can't create /proc/x: Permission denied") == "EACCES"
    assert errno_of("something else") is None


def test_judge_writes():
    c = Check("w", "proc", path="/proc/x", write="9", expect_errno="EINVAL")
    assert judge(c, 0, "ret=-1 errno=EINVAL\n", "", {}) == []
    assert judge(c, 0, "ret=1 errno=0\n", "", {}) == ["write of '9' succeeded, expected EINVAL"]
    assert judge(c, 0, "ret=-1 errno=EACCES\n", "", {}) == ["write of '9' failed with EACCES, expected EINVAL"]
    assert judge(c, 3, "open_errno=EACCES\n", "", {}) == ["write of '9' failed with EACCES, expected EINVAL"]
    ok = Check("w", "proc", path="/proc/x", write="9")
    assert judge(ok, 0, "ret=1 errno=0\n", "", {}) == []
    assert judge(ok, 0, "ret=-1 errno=ENOSPC\n", "", {}) == ["write of '9' failed with ENOSPC, expected success"]
    assert judge(ok, 3, "open_errno=ENOENT\n", "", {}) == ["write of '9' failed with ENOENT, expected success"]
    # kh-agent did not run at all: what the shell said.
    assert judge(ok, 127, "", "sh: kh-agent: not found", {}) == \
        ["write of '9' failed with sh: kh-agent: not found, expected success"]


def test_judge_reads_and_dmesg():
    c = Check("r", "proc", path="/proc/x", expect="1 2 3")
    assert judge(c, 0, "1 2 3\n", "", {}) == []
    assert judge(c, 0, "1 2\n", "", {}) == ["read '1 2', expected '1 2 3'"]
    assert "reading /proc/x failed: ENOENT" in judge(c, 1, "", "cat: can't open '/proc/x': No such file or directory", {})[0]
    # kh-agent cat's words (as coreutils' cat): a missing file, a show() that failed
    assert judge(c, 1, "", "cat: /proc/x: No such file or directory\n", {}) == ["reading /proc/x failed: ENOENT"]
    assert judge(c, 1, "", "cat: /proc/x: Input/output error\n", {}) == ["reading /proc/x failed: EIO"]
    d = Check("d", "dmesg", expect="deque: cap 4", forbid="WARNING")
    assert judge(d, 0, "<6>[1.0] deque: cap 4\n", "", {}) == []
    probs = judge(d, 0, "<4>[1.0] WARNING: CPU: 0 at x\n", "", {})
    assert probs[0].startswith("kernel log since the previous step does not match")
    assert "forbidden 'WARNING'" in probs[1]


def test_ioctl_checks_are_encoded_per_target():
    from kharness.targets import get_target

    c = parse_check(P, 1, {"kind": "ioctl", "device": "/dev/k", "request": "_IOWR('k', 3, payload)",
                           "payload": [["u8", 1], ["u32", 2]], "expect_out": [["u8", 0], ["u32", "*"]]})
    x86 = command_for(c, {}, get_target("x86_64"))
    be = command_for(c, {}, get_target("ppc64"))
    assert x86 == STEP_CURSOR + "kh-agent ioctl /dev/k 0xc0086b03 0100000002000000 8"
    assert be == STEP_CURSOR + "kh-agent ioctl /dev/k 0xc0086b03 0100000000000002 8"
    io = parse_check(P, 2, {"kind": "ioctl", "device": "/dev/k", "request": "_IO('k', 4)"})
    assert command_for(io, {}, get_target("ppc64")).endswith("0x20006b04 - 0")   # powerpc: _IOC_NONE is 1
    assert command_for(io, {}, get_target("rpi2")).endswith("0x6b04 - 0")


def test_ioctl_judging():
    from kharness.targets import get_target

    t = get_target("ppc64")
    c = parse_check(P, 1, {"kind": "ioctl", "device": "/dev/k", "request": "_IOR('k', 2, payload)",
                           "expect_out": [["u8", 1], ["u32", 7]]})
    assert judge(c, 0, "ret=0 errno=0 out=0100000000000007\n", "", {}, t) == []
    assert judge(c, 0, "ret=0 errno=0 out=0100000007000000\n", "", {}, t) == \
        ["field 1 (u32) is 117440512, expected 7"]          # little-endian bytes on a big-endian target
    assert judge(c, 0, "ret=-1 errno=ENOTTY out=0000000000000000", "", {}, t) == \
        ["ioctl returned -1 (ENOTTY), expected 0"]
    assert judge(c, 3, "open_errno=ENOENT", "", {}, t) == ["cannot open /dev/k: ENOENT"]
    assert "no answer from the guest agent" in judge(c, 127, "", "sh: kh-agent: not found", {}, t)[0]


@pytest.mark.parametrize("table,needle", [
    ({"kind": "ioctl", "request": 1}, "'device' (an absolute path"),
    ({"kind": "ioctl", "device": "/dev/k"}, "'request' is required"),
    ({"kind": "ioctl", "device": "/dev/k", "request": "_IOW('k', 1)"}, "give the size"),
    ({"kind": "ioctl", "device": "/dev/k", "request": 1, "payload": [["u33", 1]]}, "unknown field type 'u33'"),
    ({"kind": "ioctl", "device": "/dev/k", "request": 1, "payload": [["u8", 300]]}, "does not fit in a u8"),
    ({"kind": "ioctl", "device": "/dev/k", "request": 1, "expect_ret": "0"}, "'expect_ret' must be an integer"),
    ({"kind": "ioctl", "device": "/dev/k", "request": 1, "expect_out": [["u32", "x"]]}, "u32 field needs an integer"),
    ({"kind": "ioctl", "device": "/dev/k", "request": 1, "expect_out": [["char[4]", 7]]}, "needs a string"),
])
def test_ioctl_errors(table, needle):
    assert needle in err(table)


# --- chardev ---------------------------------------------------------------------------------

def test_chardev_steps_become_one_agent_session():
    c = parse_check(P, 1, {"kind": "chardev", "device": "/dev/deque", "steps": [
        {"write": "hi {param.cap}"}, {"read": 5, "expect": "hi 4"}, {"write_hex": "00 ff"},
        {"seek": 0}, {"open_again": True, "expect_errno": "EBUSY"}, {"open_other": True},
        {"close": True}, {"reopen": True}]})
    assert c.name == "chardev /dev/deque"
    cmd = command_for(c, values_for(["deque"], {"deque": {"cap": "4"}}))
    assert cmd == STEP_CURSOR + ("kh-agent session /dev/deque rw w:68692034 r:5 w:00ff s:0 again other "
                                 "close open")


def test_chardev_mknod_from_proc_devices():
    c = parse_check(P, 1, {"kind": "chardev", "device": "/dev/x", "mknod": "khdemo", "minor": 3,
                           "mode": "r", "steps": [{"read": 1}]})
    cmd = command_for(c, {})
    assert "/proc/devices" in cmd and "mknod /dev/x c $m 3" in cmd and "session /dev/x r r:1" in cmd


def test_chardev_judging():
    c = parse_check(P, 1, {"kind": "chardev", "device": "/dev/d", "steps": [
        {"write": "hello"}, {"read": 5, "expect": "hello"}, {"open_again": True, "expect_errno": "EBUSY"}]})
    ok = ("step=0 op=open ret=0 errno=0\nstep=1 op=write ret=5 errno=0\n"
          "step=2 op=read ret=5 errno=0 data=68656c6c6f\nstep=3 op=again ret=-1 errno=EBUSY\n")
    assert judge(c, 0, ok, "", {}) == []
    assert judge(c, 0, ok.replace("errno=EBUSY", "errno=0").replace("ret=-1", "ret=0"), "", {}) == \
        ["step 3 (open_again) succeeded, expected EBUSY"]
    assert judge(c, 0, ok.replace("data=68656c6c6f", "data=6865"), "", {}) == \
        ["step 2 (read 5) read b'he', expected b'hello'"]
    assert judge(c, 0, ok.replace("ret=5 errno=0\nstep=2", "ret=3 errno=0\nstep=2"), "", {}) == \
        ["step 1 (write 'hello') wrote 3 of 5 bytes"]
    assert judge(c, 0, "step=0 op=open ret=-1 errno=ENOENT\n", "", {}) == ["cannot open /dev/d: ENOENT"]
    assert "no answer from the guest agent" in judge(c, 127, "", "sh: kh-agent: not found", {})[0]
    busy = parse_check(P, 2, {"kind": "chardev", "device": "/dev/d", "open_errno": "EBUSY"})
    assert judge(busy, 0, "step=0 op=open ret=-1 errno=EBUSY\n", "", {}) == []
    assert judge(busy, 0, "step=0 op=open ret=0 errno=0\n", "", {}) == ["open of /dev/d succeeded, expected EBUSY"]


@pytest.mark.parametrize("table,needle", [
    ({"kind": "chardev"}, "'device' (an absolute path"),
    ({"kind": "chardev", "device": "/dev/x", "mode": "a"}, "'mode' must be"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"read": 1, "write": "x"}]}, "step 1: give exactly one action"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"expect": "x"}]}, "step 1: give exactly one action"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"write": 5}]}, "step 1: 'write' must be a string"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"read": -1}]}, "step 1: 'read' must be an integer"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"write_hex": "zz"}]}, "'write_hex' must be hex bytes"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"write": "a", "expect": "a"}]}, "apply to a read step"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"close": True, "expect_errno": "EBOGUS"}]},
     "'expect_errno' must be an errno name"),
    ({"kind": "chardev", "device": "/dev/x", "steps": [{"wrte": "a"}]}, "unknown key(s) ['wrte']"),
    ({"kind": "chardev", "device": "/dev/x", "mknod": "a b"}, "'mknod' must be a device name"),
])
def test_chardev_errors(table, needle):
    msg = err(table)
    assert msg.startswith("/m/kharness.toml: check #3") and needle in msg, msg


# --- gpio ------------------------------------------------------------------------------------

def test_gpio_steps():
    c = parse_check(P, 1, {"kind": "gpio", "line": 17, "pulse": 5, "interval_ms": 2, "expect_irqs": 5})
    assert c.name == "gpio line 17"
    cmd = command_for(c, {})
    assert "echo '17 5 2000' > /sys/kernel/debug/khgpio/pulse" in cmd
    assert "/sys/kernel/debug/khgpio/line17/irqs" in cmd
    s = parse_check(P, 2, {"kind": "gpio", "line": 4, "set": 1, "expect_level": 1})
    assert "echo 1 > /sys/kernel/debug/khgpio/line4/value" in command_for(s, {})


def test_gpio_judging():
    c = parse_check(P, 1, {"kind": "gpio", "line": 17, "pulse": 5, "expect_irqs": 5, "expect_level": 0,
                           "expect_direction": "in"})
    assert judge(c, 0, "irqs=5 level=0 direction=in\n", "", {}) == []
    assert judge(c, 0, "irqs=4 level=1 direction=out\n", "", {}) == [
        "4 interrupt(s) delivered on line 17, expected 5", "line 17 is at level 1, expected 0",
        "line 17 is an output, expected input"]
    assert judge(c, 2, "", "sh: write error: Operation not permitted", {}) == \
        ["could not pulse 5 times khgpio line 17: EPERM"]


@pytest.mark.parametrize("table,needle", [
    ({"kind": "gpio"}, "'line' (the khgpio line number"),
    ({"kind": "gpio", "line": 99}, "'line' must be an integer from 0 to 63"),
    ({"kind": "gpio", "line": 1, "set": 2}, "'set' must be an integer from 0 to 1"),
    ({"kind": "gpio", "line": 1, "set": 1, "pulse": 2}, "give 'set' or 'pulse', not both"),
    ({"kind": "gpio", "line": 1, "interval_ms": 2}, "'interval_ms' applies to a pulse"),
    ({"kind": "gpio", "line": 1, "expect_direction": "up"}, "'expect_direction' must be"),
    ({"kind": "gpio", "line": "4"}, "'line' must be an integer"),
])
def test_gpio_errors(table, needle):
    msg = err(table)
    assert msg.startswith("/m/kharness.toml: check #3") and needle in msg, msg


def test_resolved_values_in_placeholders():
    v = {"module": "m", "major": "240", "major.khdemo": "240", "gpio.base": "512", "gpio.17": "529"}
    c = Check("r", "run", run="mknod /dev/x c {major} 0; echo {gpio.17} {gpio.base} {major.khdemo}")
    assert command_for(c, v) == STEP_CURSOR + "mknod /dev/x c 240 0; echo 529 512 240"
    with pytest.raises(UsageError, match=r"\{gpio\.40\} is not known here"):
        command_for(Check("r", "run", run="echo {gpio.40}"), v)


def test_targets_restrict_a_check():
    c = parse_check(P, 1, {"run": "true", "targets": ["rpi2", "rpi3"]})
    assert c.targets == ("rpi2", "rpi3")
    assert "unknown target(s) ['rpi9']" in err({"run": "true", "targets": ["rpi9"]})
    assert "'targets' must be a non-empty list" in err({"run": "true", "targets": "rpi2"})


def test_ioctl_expect_errno_alone_expects_a_failed_call():
    from kharness.targets import get_target

    c = parse_check(P, 1, {"kind": "ioctl", "device": "/dev/k", "request": "_IO('k', 9)", "expect_errno": "ENOTTY"})
    assert c.expect_ret == -1
    assert judge(c, 0, "ret=-1 errno=ENOTTY out=", "", {}, get_target("x86_64")) == []
    assert judge(c, 0, "ret=0 errno=0 out=", "", {}, get_target("x86_64")) == \
        ["ioctl returned 0 (0), expected -1", "errno 0, expected ENOTTY"]


# --- what is judged per run, before anything is built or booted ------------------------------

def _validate(tables, target="x86_64", params=(), gpio_lines=None, extra=None):
    from kharness.checks import validate_for_run
    from kharness.targets import get_target

    cs = tuple(parse_check(P, i, t) for i, t in enumerate(tables, 1))
    validate_for_run(P, cs, get_target(target), params=set(params), gpio_lines=gpio_lines, extra_texts=extra)


def _validate_err(*a, **kw) -> str:
    with pytest.raises(UsageError) as e:
        _validate(*a, **kw)
    return f"{e.value} | {e.value.hint}"


def test_placeholders_must_name_what_will_exist():
    _validate([{"run": "echo {module} {major} {major.foo} {param.n} {gpio.base} {gpio.7}"}],
              params={"n"}, gpio_lines=8)
    msg = _validate_err([{"run": "true"}, {"kind": "proc", "path": "/proc/x", "write": "{param.nope}"}],
                        params={"n"})
    assert msg.startswith("/m/kharness.toml: check #2 (proc /proc/x): 'write' uses {param.nope}: no such parameter")
    assert "{param.n}" in msg
    assert "khgpio has lines 0 to 7" in _validate_err([{"kind": "file", "path": "/x{gpio.8}"}], gpio_lines=8)
    assert "no [gpio] section" in _validate_err([{"run": "echo {gpio.base}"}])
    assert "parameter led" in _validate_err([{"run": "true"}], extra={"parameter led": "{gpio.40}"}, gpio_lines=8)
    # a check limited to other targets is not judged for this one
    _validate([{"run": "echo {param.nope}", "targets": ["rpi2"]}], target="x86_64")


def test_ioctl_sizes_are_judged_for_the_target():
    big = {"kind": "ioctl", "device": "/dev/k", "request": "_IOW('k', 1, payload)", "payload": [["u8[9000]", "00"]]}
    _validate([big], target="x86_64")                 # 14 size bits: fits
    msg = _validate_err([big], target="ppc64")        # powerpc: 13 size bits
    assert "check #1" in msg and "on ppc64" in msg and "does not fit in 13 bits" in msg


# --- placeholders are values, never syntax (issue 13, item 10) ---------------------------------

GREETING = {"param.greeting": "1.5", "module": "m"}


def test_placeholder_in_a_regex_is_matched_literally():
    # The false pass: unescaped, "^1.5$" matches "175".
    c = parse_check(P, 1, {"run": "cat /sys/module/m/parameters/greeting", "expect_stdout": "^{param.greeting}$"})
    assert judge(c, 0, "175\n", "", GREETING) == ["stdout '175' does not match '^{param.greeting}$'"]
    assert judge(c, 0, "1.5\n", "", GREETING) == []
    e = parse_check(P, 2, {"run": "cat x", "expect_stderr": "^{param.greeting} "})
    assert judge(e, 0, "", "175 x", GREETING) != [] and judge(e, 0, "", "1.5 x", GREETING) == []


def test_placeholder_with_regex_syntax_does_not_crash_the_judge():
    v = {"param.greeting": "hi (there", "module": "m"}
    c = parse_check(P, 1, {"run": "cat x", "expect_stdout": "^{param.greeting}$"})
    assert judge(c, 0, "hi (there\n", "", v) == []
    assert judge(c, 0, "hi there\n", "", v) == ["stdout 'hi there' does not match '^{param.greeting}$'"]


def test_dmesg_expect_and_forbid_escape_placeholders():
    v = {"param.greeting": "1.5", "module": "m"}
    exp = parse_check(P, 1, {"kind": "dmesg", "expect": "greeting is {param.greeting}$"})
    assert judge(exp, 0, "[ 1.0] m: greeting is 175\n", "", v) != []
    assert judge(exp, 0, "[ 1.0] m: greeting is 1.5\n", "", v) == []
    forbid = parse_check(P, 2, {"kind": "dmesg", "forbid": "bad {param.greeting}"})
    assert judge(forbid, 0, "bad 175\n", "", v) == []
    assert judge(forbid, 0, "bad 1.5\n", "", v) != []
    crash = parse_check(P, 3, {"kind": "dmesg", "expect": "{param.greeting}"})
    assert judge(crash, 0, "x hi (there y\n", "", {"param.greeting": "hi (there"}) == []


def test_exact_fields_stay_exact():
    c = parse_check(P, 1, {"kind": "sysfs", "path": "/sys/module/m/parameters/g", "expect": "{param.greeting}"})
    assert judge(c, 0, "1.5\n", "", GREETING) == []
    assert judge(c, 0, "175\n", "", GREETING) == ["read '175', expected '1.5'"]
    w = parse_check(P, 2, {"kind": "sysfs", "path": "/sys/{module}/g", "write": "{param.greeting}"})
    assert command_for(w, {"param.greeting": "a'b (c", "module": "m"}) == \
        STEP_CURSOR + "kh-agent redirect /sys/m/g " + "a'b (c".encode().hex()


@pytest.mark.parametrize("field", ["expect_stdout", "expect_stderr"])
def test_an_invalid_user_regex_is_refused_naming_file_check_and_field(field):
    msg = err({"name": "greets", "run": "true", field: "({param.greeting}"})
    assert msg.startswith("/m/kharness.toml: check #3 (greets): ")
    assert f"'{field}' is not a valid regular expression" in msg and "\n" not in msg


def test_run_takes_plain_values_as_they_are():
    v = {"param.tag": "run-3.x_y", "module": "m"}
    c = Check("r", "run", run="grep -v 'tag={param.tag}$' \"{param.tag}\" {param.tag}")
    assert command_for(c, v) == STEP_CURSOR + "grep -v 'tag=run-3.x_y$' \"run-3.x_y\" run-3.x_y"


@pytest.mark.parametrize("value", ["hi (there", "a b", "x' ; touch /P ; '", "$(reboot)", "`id`", 'q"'])
def test_run_refuses_shell_special_values(value):
    c = Check("r", "run", run="echo {param.greeting}")
    with pytest.raises(UsageError) as e:
        command_for(c, {"param.greeting": value})
    assert "'run' uses {param.greeting}, whose value" in e.value.message and "shell" in e.value.message
    # ... and it is known before anything is built: from the parameter values validate_for_run sees
    msg = _validate_err([{"run": "echo {param.greeting}"}], params={"greeting"},
                        extra={"parameter greeting": value})
    assert msg.startswith("/m/kharness.toml: check #1 (echo {param.greeting}): 'run' uses {param.greeting}")
    # a sysfs check can compare it exactly instead: no refusal there
    _validate([{"kind": "sysfs", "path": "/sys/x", "expect": "{param.greeting}"}], params={"greeting"},
              extra={"parameter greeting": value})
    _validate([{"run": "echo {param.other}"}], params={"greeting", "other"},
              extra={"parameter greeting": value, "parameter m.other": "5"})


def test_load_expect_dmesg_escapes_placeholders():
    """[load] expect_dmesg = 'greeting is {param.greeting}$' with greeting 1.5: 175 is no match,
    and "hi (there" is no syntax error."""
    from kharness.checks import values_for
    from kharness.runner.verdict import expect_dmesg_miss

    def miss(value: str, log: str) -> str | None:
        values = values_for(["m"], {"m": {"greeting": value}})
        return expect_dmesg_miss("load", r"greeting is {param.greeting}$", values, log)

    assert miss("1.5", "[ 2.0] m: greeting is 1.5\n") is None
    assert "did not match expect_dmesg" in miss("1.5", "[ 2.0] m: greeting is 175\n")
    assert miss("hi (there", "[ 2.0] m: greeting is hi (there\n") is None


def test_run_values_can_be_given_directly():
    from kharness.checks import validate_for_run
    from kharness.targets import get_target

    cs = (parse_check(P, 1, {"run": "echo {param.g}"}),)
    validate_for_run(P, cs, get_target("x86_64"), params={"g"}, gpio_lines=None, param_values={"g": "plain-1.5"})
    with pytest.raises(UsageError, match="has characters a shell would interpret"):
        validate_for_run(P, cs, get_target("x86_64"), params={"g"}, gpio_lines=None, param_values={"g": "a b"})
