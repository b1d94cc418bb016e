"""Unit tests for kharness.modconfig: kharness.toml loading and --param parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness.errors import UsageError
from kharness.modconfig import Check, ModuleConfig, load_config, merge_params, parse_cli_params

FULL = r'''
[module]
name = "alpha"
load_order = ["alpha", "beta"]
timeout = 30
params = { myint = 5, verbose = true, quiet = false, list = ["a", "b"], nums = [1, 2, 3], s = "x y", ratio = 1.5, beta = { depth = 2, on = true } }

[build]
sources = ["main.c", "util.c"]
ccflags = ["-DDEBUG"]
include_dirs = ["../include"]

[load]
expect_dmesg = "alpha: loaded with myint=5"

[unload]
expect_dmesg = 'alpha: bye\s*$'

[[check]]
name = "proc file"
run = "cat /proc/alpha"
expect_stdout = "^value=\\d+$"

[[check]]
run = "echo 1 > /sys/module/alpha/parameters/myint"
expect_rc = 1
expect_stderr = "Permission denied"
timeout = 2.5
'''


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "kharness.toml").write_text(text)
    return tmp_path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as ei:
        load_config(_write(tmp_path, text))
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path / 'kharness.toml'}: ")
    return msg[len(str(tmp_path / "kharness.toml")) + 2:]


def test_no_file_is_the_default_config(tmp_path):
    assert load_config(tmp_path) == ModuleConfig()


def test_full_config(tmp_path):
    cfg = load_config(_write(tmp_path, FULL))
    assert cfg.path == tmp_path / "kharness.toml"
    assert cfg.name == "alpha"
    assert cfg.load_order == ("alpha", "beta")
    assert cfg.timeout == 30
    assert cfg.sources == ("main.c", "util.c")
    assert cfg.ccflags == ("-DDEBUG",)
    assert cfg.include_dirs == ("../include",)
    assert cfg.params == {
        "": {"myint": "5", "verbose": "1", "quiet": "0", "list": "a,b", "nums": "1,2,3", "s": "x y",
             "ratio": "1.5"},
        "beta": {"depth": "2", "on": "1"},
    }
    assert cfg.load_expect_dmesg == "alpha: loaded with myint=5"
    assert cfg.unload_expect_dmesg == r"alpha: bye\s*$"
    assert cfg.checks == (
        Check(name="proc file", run="cat /proc/alpha", expect_rc=0, expect_stdout=r"^value=\d+$"),
        Check(name="echo 1 > /sys/module/alpha/parameters/myint", run="echo 1 > /sys/module/alpha/parameters/myint",
              expect_rc=1, expect_stderr="Permission denied", timeout=2.5),
    )


def test_build_keys_in_module_section(tmp_path):
    cfg = load_config(_write(tmp_path, '[module]\nsources = ["a.c"]\nccflags = ["-O1"]\n'
                                       '[build]\nccflags = ["-O2"]\n'))
    assert cfg.sources == ("a.c",)
    assert cfg.ccflags == ("-O2",)  # [build] wins


def test_per_module_params_table_syntax(tmp_path):
    cfg = load_config(_write(tmp_path, "[module.params]\nx = 1\n[module.params.beta]\ny = [true, false]\n"))
    assert cfg.params == {"": {"x": "1"}, "beta": {"y": "1,0"}}


def test_empty_file(tmp_path):
    cfg = load_config(_write(tmp_path, ""))
    assert cfg == ModuleConfig(path=tmp_path / "kharness.toml")


def test_unknown_top_level_section(tmp_path):
    assert _error(tmp_path, "[modul]\nname = 'x'\n") == (
        "top level: unknown section(s) ['modul']; known: module, build, gpio, guest, load, unload, check, programs")


def test_unknown_module_key(tmp_path):
    assert _error(tmp_path, "[module]\nnmae = 'x'\n") == "[module]: unknown key(s) ['nmae']"


def test_unknown_build_key(tmp_path):
    assert _error(tmp_path, "[build]\ncflags = ['-O2']\n") == "[build]: unknown key(s) ['cflags']"


def test_unknown_key_in_a_check(tmp_path):
    assert _error(tmp_path, '[[check]]\nname = "c1"\nrun = "true"\nexpect_code = 1\n') == (
        "check #1 (c1): unknown key(s) ['expect_code'] for a run check; it takes expect_rc, expect_stderr, "
        "expect_stdout, name, repeat, run, targets, timeout")


def test_missing_run(tmp_path):
    text = '[[check]]\nrun = "true"\n[[check]]\nname = "second"\nexpect_rc = 0\n'
    assert _error(tmp_path, text) == ("check #2 (second): give 'run' (a shell command) or a 'kind' "
                                      "(run, proc, sysfs, file, dmesg, ioctl, chardev, gpio, program)")


def test_blank_run(tmp_path):
    assert _error(tmp_path, '[[check]]\nrun = "   "\n') == "check #1: 'run' (a shell command) is required"


@pytest.mark.parametrize("value", ['"1"', "true", "1.0"])
def test_non_integer_expect_rc(tmp_path, value):
    assert _error(tmp_path, f'[[check]]\nname = "rc"\nrun = "false"\nexpect_rc = {value}\n') == (
        "check #1 (rc): 'expect_rc' must be an integer")


def test_invalid_regex_in_expect_stdout(tmp_path):
    msg = _error(tmp_path, '[[check]]\nname = "re"\nrun = "true"\nexpect_stdout = "(unclosed"\n')
    assert msg.startswith("check #1 (re): 'expect_stdout' is not a valid regular expression: missing ), "
                          "unterminated subpattern")


def test_non_string_regex(tmp_path):
    assert _error(tmp_path, '[load]\nexpect_dmesg = 5\n') == (
        "[load] expect_dmesg: must be a string (a regular expression)")


def test_invalid_regex_in_load(tmp_path):
    assert _error(tmp_path, '[unload]\nexpect_dmesg = "[z-a]"\n').startswith(
        "[unload] expect_dmesg: invalid regular expression: bad character range z-a")


def test_unknown_key_in_load(tmp_path):
    assert _error(tmp_path, '[load]\nexpect = "x"\n') == "[load]: unknown key(s) ['expect']; known: expect_dmesg, expect_errno"


def test_invalid_toml(tmp_path):
    msg = _error(tmp_path, "[module\nname = 'x'\n")
    assert msg.startswith("not valid TOML: ")


@pytest.mark.parametrize("text,msg", [
    ('[[check]]\nrun = "x"\ntimeout = 0\n', "check #1: 'timeout' must be a positive number of seconds"),
    ('[[check]]\nrun = "x"\ntimeout = "5"\n', "check #1: 'timeout' must be a positive number of seconds"),
    ("[module]\ntimeout = -1\n", "[module] timeout: must be a positive number of seconds"),
    ("[module]\nname = 5\n", "[module] name: must be a string"),
    ('[module]\nload_order = "a"\n', "[module] load_order: must be a list of module names"),
    ('[build]\nsources = "a.c"\n', "sources: must be a list of strings"),
    ("[build]\nccflags = [1]\n", "ccflags: must be a list of strings"),
    ('[module]\nparams = "x=1"\n', "[module] params: must be a table such as { myint = 5 }"),
    ('module = 5\n', "[module]/[build]: must be tables"),
    ('check = { run = "x" }\n', "check: use [[check]] entries"),
    ('check = ["x"]\n', "check #1: must be a table"),
])
def test_other_errors(tmp_path, text, msg):
    assert _error(tmp_path, text) == msg


@pytest.mark.parametrize("text", ["load = 5\n", "[[unload]]\nexpect_dmesg = 'x'\n"])
def test_load_section_not_a_table(tmp_path, text):
    _write(tmp_path, text)
    try:
        load_config(tmp_path)
    except UsageError as e:
        assert str(e).startswith(f"{tmp_path / 'kharness.toml'}: ")
    except Exception as e:  # noqa: BLE001 - the bug: anything else escapes
        raise AssertionError(f"{type(e).__name__} escaped: {e}") from e
    else:
        raise AssertionError("accepted a [load] section that is not a table")


def test_parse_cli_params():
    assert parse_cli_params(["myint=5", "alpha.myint=6", "s=a b", "empty=", "eq=a=b", "alpha.flag=1"]) == {
        "": {"myint": "5", "s": "a b", "empty": "", "eq": "a=b"},
        "alpha": {"myint": "6", "flag": "1"},
    }


def test_parse_cli_params_later_wins():
    assert parse_cli_params(["x=1", "x=2"]) == {"": {"x": "2"}}


@pytest.mark.parametrize("bad", ["novalue", "=5", "9x=1", "a.b.c=1", "my-int=1", ".x=1", ""])
def test_parse_cli_params_bad(bad):
    with pytest.raises(UsageError) as ei:
        parse_cli_params([bad])
    assert ei.value.message == f"--param {bad!r} is not KEY=VALUE"
    assert ei.value.hint == "e.g. --param myint=5 or --param mymod.myint=5"


def test_merge_params_layering():
    toml = {"": {"myint": "1", "s": "toml"}, "alpha": {"x": "1"}}
    cli = {"": {"myint": "5"}, "beta": {"y": "2"}}
    merged = merge_params(toml, cli)
    assert merged == {"": {"myint": "5", "s": "toml"}, "alpha": {"x": "1"}, "beta": {"y": "2"}}
    # inputs untouched
    assert toml == {"": {"myint": "1", "s": "toml"}, "alpha": {"x": "1"}}
    assert merge_params() == {}
    assert merge_params(cli, toml)[""] == {"myint": "1", "s": "toml"}


def test_gpio_section(tmp_path):
    from kharness.hw.gpio import GpioConfig
    assert load_config(_write(tmp_path, "[gpio]\nbase = 0\nlines = 8\n")).gpio == GpioConfig(0, 8)
    assert load_config(_write(tmp_path, "[gpio]\n")).gpio == GpioConfig(None, 32)
    # A gpio check alone asks for the controller with its defaults.
    cfg = load_config(_write(tmp_path, '[[check]]\nkind = "gpio"\nline = 3\n'))
    assert cfg.gpio == GpioConfig(None, 32)
    assert load_config(_write(tmp_path, "")).gpio is None
    assert GpioConfig(0, 8).insmod_argv("/kh/khgpio.ko") == ["insmod", "/kh/khgpio.ko", "ngpio=8", "base=0"]
    assert GpioConfig(None, 8).insmod_argv("/kh/khgpio.ko", ("kh-agent", "insmod")) == \
        ["kh-agent", "insmod", "/kh/khgpio.ko", "ngpio=8"]


@pytest.mark.parametrize("text,needle", [
    ('[gpio]\nbase = -1\n', "[gpio] base must be \"auto\" or a GPIO number"),
    ('[gpio]\nlines = 65\n', "[gpio] lines must be an integer from 1 to 64"),
    ('[gpio]\npins = 3\n', "[gpio]: unknown key(s) ['pins']"),
    ('[gpio]\nlines = 8\n[[check]]\nname = "btn"\nkind = "gpio"\nline = 8\n',
     "check #1 (btn): 'line' 8 is out of range: khgpio has lines 0 to 7"),
])
def test_gpio_errors(tmp_path, text, needle):
    assert needle in _error(tmp_path, text)


def test_gpio_numbers_need_the_controller(tmp_path):
    assert "no [gpio] section" in _error(tmp_path, '[module]\nparams = { button = "{gpio.17}" }\n')


# --- what insmod can pass to the kernel (issue 13, item 10) ------------------------------------

def _kernel_parse_args(args: bytes) -> list[tuple[bytes, bytes | None]]:
    """kernel/params.c: parse_args() and next_arg(), transcribed, with lib/ctype.c's isspace."""
    spaces = b"\t\n\v\f\r \xa0"
    out = []
    args = args.lstrip(spaces)
    while args:
        i, equals, in_quote, quoted = 0, 0, False, False
        buf = bytearray(args)
        if buf[:1] == b'"':
            buf = buf[1:]
            in_quote = quoted = True
        while i < len(buf):
            if buf[i] in spaces and not in_quote:
                break
            if equals == 0 and buf[i] == ord("="):
                equals = i
            if buf[i] == ord('"'):
                in_quote = not in_quote
            i += 1
        word = bytearray(buf[:i])
        if quoted and i > 0 and word[-1:] == b'"':
            word = word[:-1]
        if not equals:
            out.append((bytes(word), None))
        else:
            name, val = bytes(word[:equals]), bytearray(word[equals + 1:])
            if val[:1] == b'"':
                val = val[1:]
                if val[-1:] == b'"' and not quoted:
                    val = val[:-1]
            out.append((name, bytes(val)))
        args = bytes(buf[i + 1:]).lstrip(spaces)
    return out


def _through_insmod(params: dict[str, str]) -> list[tuple[bytes, bytes | None]]:
    """What the kernel reads: shlex.join to the guest shell, busybox insmod's " ".join of its argv."""
    import shlex

    from kharness.runner import _insmod_args

    argv = shlex.split(shlex.join(["insmod", "/kh/m.ko", *_insmod_args(params)]))
    return _kernel_parse_args(" ".join(argv[2:]).encode() + b" ")


@pytest.mark.parametrize("value", ["5", "", "hi (there", "1.5", "a b  c", "a=b", "1,2", "à la", "voilà", "x'y", "{}$`\\"])
def test_insmod_args_reach_the_kernel_exactly(value):
    assert _through_insmod({"mystring": value, "myint": "7"}) == [(b"mystring", value.encode()), (b"myint", b"7")]


def test_insmod_args_quote_only_what_needs_it():
    from kharness.runner import _insmod_args

    assert _insmod_args({"a": "5", "b": "hi (there", "c": "", "d": "1.5"}) == \
        ["a=5", 'b="hi (there"', 'c=""', "d=1.5"]


@pytest.mark.parametrize("value,why", [
    ('x" other=1 "', "double quote"),
    ("a\nb", "control character '\\n'"),
    ("a\x00b", "control character '\\x00'"),
    ("a\udcffb", "not valid UTF-8"),
])
def test_a_value_the_kernel_cannot_take_is_refused(tmp_path, value, why):
    from kharness.runner import _insmod_args

    with pytest.raises(UsageError) as ei:
        parse_cli_params([f"mystring={value}"])
    assert ei.value.message.startswith(f"--param {'mystring=' + value!r}: the value {value!r} of parameter mystring")
    assert why in ei.value.message
    with pytest.raises(UsageError):
        _insmod_args({"mystring": value})
    if "\udcff" in value:
        return   # TOML text is UTF-8: only the command line can carry such a value
    toml = tmp_path / "kharness.toml"
    toml.write_text(f"[module]\nparams = {{ mystring = {_toml_str(value)} }}\n")
    with pytest.raises(UsageError) as ei:
        load_config(tmp_path)
    assert ei.value.message.startswith(f"{toml}: [module] params: the value {value!r} of parameter mystring")


def _toml_str(v: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v) + '"'


def test_the_unquoted_value_would_have_become_another_parameter():
    # Why a quote is refused rather than pasted: this is what the kernel made of it.
    assert _kernel_parse_args(b'mystring="x" other=1 "" ') == [(b"mystring", b"x"), (b"other", b"1"), (b"", None)]


@pytest.mark.parametrize("name", ["my string", "a=b", "x.y", "9x", "-x", ""])
def test_a_toml_parameter_name_must_be_a_parameter_name(tmp_path, name):
    msg = _error(tmp_path, f'[module]\nparams = {{ "{name}" = 1 }}\n')
    assert msg.startswith(f"[module] params: {name!r} is not a module parameter name (")
