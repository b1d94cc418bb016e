"""Companion programs without a guest: the build and its cache (real host compilers, a private
cache), the ``program`` kind's parsing, commands and judging, discovery and the ``programs`` line,
and how the payload carries them (initrd entries, delivery to a restored guest).

The same programs in real guests: tests/integration/test_programs.py."""

from __future__ import annotations

import shutil
import stat
import textwrap
from pathlib import Path

import pytest

from kharness import agent_client, checks, hostcc
from kharness.build import companions
from kharness.build import program as bp
from kharness.build.makefile import plan_build
from kharness.checks.kinds import program as kind
from kharness.errors import InfraError, UsageError
from kharness.image.cpio import read_newc
from kharness.image.initramfs import payload_cpio
from kharness.modconfig import load_config
from kharness.targets import get_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
X86 = get_target("x86_64")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def compiles(monkeypatch):
    """Every compiler process the program build starts (argv lists)."""
    seen: list[list[str]] = []
    real = bp.proc.run

    def counting(argv, **kw):
        seen.append(list(argv))
        return real(argv, **kw)

    monkeypatch.setattr(bp.proc, "run", counting)
    return seen


def _module(tmp_path: Path, header: str = "#define GREETING \"hello\"\n") -> Path:
    d = tmp_path / "mod"
    (d / "other").mkdir(parents=True)
    (d / "chardev.h").write_text(header)
    (d / "other" / "prog.c").write_text(textwrap.dedent("""\
        #include <stdio.h>
        #include "../chardev.h"
        int main(void) { puts(GREETING); return 0; }
        """))
    return d


def _spec(d: Path, *sources: str, cflags=()) -> bp.ProgramSpec:
    return bp.ProgramSpec(tuple(str(d / s) for s in (sources or ("other/prog.c",))), str(d), tuple(cflags))


# --- the build and its cache ---------------------------------------------------------------------

@needs_gcc
def test_a_cached_program_runs_no_compiler_and_a_changed_header_rebuilds_it(tmp_path, cache, compiles):
    d = _module(tmp_path)
    first = bp.build_program(X86, _spec(d))
    assert not first.cached and first.size > 0 and first.name == "prog"
    assert first.path.read_bytes()[:4] == b"\x7fELF" and first.compiler.startswith("gcc")
    assert len(compiles) == 2                           # the compile, then `gcc --version` for the record
    compiles.clear()
    again = bp.build_program(X86, _spec(d))
    assert again.cached and again.path == first.path and compiles == []   # no process at all
    (d / "chardev.h").write_text("#define GREETING \"changed\"\n")          # a header it includes
    changed = bp.build_program(X86, _spec(d))
    assert not changed.cached and compiles and b"changed" in changed.path.read_bytes()
    compiles.clear()
    assert bp.build_program(X86, _spec(d)).cached and compiles == []
    # Other flags are another program.
    assert not bp.build_program(X86, _spec(d, cflags=["-DX=1"])).cached


@needs_gcc
def test_several_sources_are_compiled_apart_and_linked(tmp_path, cache, compiles):
    d = tmp_path / "m"
    d.mkdir()
    (d / "helper.h").write_text("int helper(void);\n")
    (d / "a.c").write_text('#include <stdio.h>\n#include "helper.h"\nint main(void){printf("%d\\n", helper());}\n')
    (d / "b.c").write_text('#include "helper.h"\nint helper(void){return 42;}\n')
    built = bp.build_program(X86, bp.ProgramSpec((str(d / "a.c"), str(d / "b.c")), str(d)))
    assert not built.cached and built.name == "a"
    assert [a for a in compiles[0] if a == "-c"] and "-o" in compiles[2] and "-static" in compiles[2]
    (d / "helper.h").write_text("int helper(void); /* changed */\n")
    assert not bp.build_program(X86, bp.ProgramSpec((str(d / "a.c"), str(d / "b.c")), str(d))).cached


@needs_gcc
def test_a_compile_error_is_the_programs_with_its_first_error_lines(tmp_path, cache):
    d = tmp_path / "m"
    d.mkdir()
    (d / "bad.c").write_text("int main(void) { return undeclared_thing; }\n")
    with pytest.raises(bp.ProgramBuildError) as e:
        bp.build_program(X86, bp.ProgramSpec((str(d / "bad.c"),), str(d)))
    assert "undeclared_thing" in e.value.errors[0] and "error" in e.value.errors[0]
    assert str(e.value).startswith("program bad did not compile: ") and "undeclared_thing" in str(e.value)
    assert "bad.c" in e.value.output and "-static" in e.value.command
    assert not list((cache / "programs").glob("*/program"))       # nothing cached


def test_a_missing_compiler_names_the_debian_package(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(hostcc.shutil, "which", lambda name: None)
    with pytest.raises(InfraError, match=r"powerpc64-linux-gnu-gcc is not installed .*Debian package "
                                         r"gcc-powerpc64-linux-gnu"):
        bp.build_program(get_target("ppc64"), _spec(_module(tmp_path)))


def test_a_compiler_without_a_static_libc_names_the_libc_package(tmp_path, cache, monkeypatch):
    import subprocess

    monkeypatch.setattr(bp.proc, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 1, "/usr/bin/arm-linux-gnueabihf-ld: cannot find -lc: No such file or directory\n", ""))
    monkeypatch.setattr(hostcc.shutil, "which", lambda name: "/bin/true")
    with pytest.raises(InfraError, match=r"no static C library .*Debian package libc6-dev-armhf-cross"):
        bp.build_program(get_target("rpi2"), _spec(_module(tmp_path)))


def test_depfile_parsing():
    text = "prog: /m/other/prog.c /usr/include/stdio.h \\\n /m/other/../chardev.h /m/with\\ space.h\n"
    assert bp.parse_depfile(text) == ["/m/other/prog.c", "/usr/include/stdio.h", "/m/other/../chardev.h",
                                      "/m/with space.h"]


# --- the kind: parsing ---------------------------------------------------------------------------

def _parse(d: Path, **table):
    return checks.parse_check(d / "kharness.toml", 1, {"kind": "program", **table})


def test_a_program_check_as_kharness_toml_gives_it(tmp_path):
    d = _module(tmp_path)
    (d / "prog.expected").write_text("hello\n")
    c = _parse(d, source="other/prog.c", cflags="-DX='a b' -Wall", args=["-n", "two words"], stdin="in",
               expect_stdout_file="prog.expected", expect_rc=3, timeout=5)
    assert c.source == (str(d / "other" / "prog.c"),) and c.cflags == ("-DX=a b", "-Wall")
    assert c.expect_stdout_file == str(d / "prog.expected") and c.expect_rc == 3 and c.timeout == 5
    assert c.name == "prog.c -n 'two words'" and not c.background
    multi = _parse(d, source=["other/prog.c", "chardev.h"], include_dirs=["other"], background=True, name="r")
    assert len(multi.source) == 2 and multi.include_dirs == (str(d / "other"),) and multi.background


@pytest.mark.parametrize("table,message", [
    ({}, "'source' (the program's C file, or a list of them) is required"),
    ({"source": "nope.c"}, "'source': nope.c does not exist"),
    ({"source": "other"}, "is not a file"),
    ({"source": "other/prog.c", "include_dirs": ["chardev.h"]}, "is not a directory"),
    ({"source": "other/prog.c", "cflags": [1]}, "'cflags' must be a list of strings or one string"),
    ({"source": "other/prog.c", "cflags": "-D'x"}, "'cflags': No closing quotation"),
    ({"source": "other/prog.c", "args": "-v"}, "'args' must be a list of strings"),
    ({"source": "other/prog.c", "stdin": "a\0b"}, "'stdin' cannot hold a NUL character"),
    ({"source": "other/prog.c", "expect_stdout": "x", "expect_stdout_file": "chardev.h"}, "not both"),
    ({"source": "other/prog.c", "expect_stdout": "("}, "'expect_stdout' is not a valid regular expression"),
    ({"source": "other/prog.c", "background": "yes"}, "'background' must be true or false"),
    ({"source": "other/prog.c", "background": True, "repeat": 2}, "a background program runs once"),
    ({"source": "other/prog.c", "program": "x"}, "unknown key(s) ['program'] for a program check"),
])
def test_parse_errors_are_one_line(tmp_path, table, message):
    d = _module(tmp_path)
    with pytest.raises(UsageError) as e:
        _parse(d, **table)
    assert message in e.value.message and "\n" not in e.value.message
    assert e.value.message.startswith(f"{d}/kharness.toml: check #1")


def test_programs_written_under_a_check_table_is_explained(tmp_path):
    d = _module(tmp_path)
    (d / "kharness.toml").write_text('[[check]]\nrun = "true"\nprograms = ["other/prog.c"]\n')
    with pytest.raises(UsageError, match="'programs' is a top-level key of kharness.toml: write it above"):
        load_config(d)


# --- the kind: commands and judging ---------------------------------------------------------------

def _values(c, path="/kh/bin/prog"):
    return {"module": "m", "major": "240", kind.VALUE_PREFIX + kind.key(c): path}


def test_the_command_quotes_every_argument_and_feeds_stdin(tmp_path):
    c = _parse(_module(tmp_path), source="other/prog.c", args=["/dev/{module}", "it's", "$HOME"], stdin="a'b\n")
    cmd = checks.command_for(c, _values(c), X86)
    assert cmd == (checks.STEP_CURSOR + "cd /tmp && printf '%s' 'a'\"'\"'b\n' | /kh/bin/prog /dev/m "
                   "'it'\"'\"'s' '$HOME'")
    with pytest.raises(RuntimeError, match="its program was not built"):
        checks.command_for(c, {}, X86)


def test_the_exact_output_is_compared_and_a_difference_is_diffed(tmp_path):
    d = _module(tmp_path)
    (d / "prog.expected").write_text("one\ntwo\nthree\n")
    c = _parse(d, source="other/prog.c", expect_stdout_file="prog.expected")
    assert checks.judge(c, 0, "one\ntwo\nthree\n", "", {}, X86) == []
    (problem,) = checks.judge(c, 0, "one\nTWO\nthree\n", "", {}, X86)
    assert problem.startswith("stdout differs from prog.expected:\n--- prog.expected\n+++ stdout\n")
    assert "\n-two\n+TWO\n" in problem
    (problem,) = checks.judge(c, 0, "one\ntwo\nthree", "", {}, X86)      # only the last newline missing
    assert "\\ No newline at end of file" in problem
    assert checks.judge(c, 1, "one\ntwo\nthree\n", "", {}, X86) == ["exit status 1, expected 0"]
    long = "".join(f"line {i}\n" for i in range(500))
    (problem,) = checks.judge(c, 0, long, "", {}, X86)
    assert problem.count("\n") <= kind.DIFF_LINES + 2 and "more diff lines" in problem


def test_regex_expectations_with_placeholders(tmp_path):
    c = _parse(_module(tmp_path), source="other/prog.c", expect_stdout=r"^major {major}$", expect_stderr="warn")
    assert checks.judge(c, 0, "major 240\n", "a warning\n", _values(c), X86) == []
    assert len(checks.judge(c, 0, "major 2400\n", "", _values(c), X86)) == 2


def test_a_background_program_is_judged_by_its_rc_only_when_it_exited_by_itself(tmp_path):
    c = _parse(_module(tmp_path), source="other/prog.c", background=True, expect_stdout="^got ping$")
    assert kind.judge_background(c, "exited", 0, "got ping\n", "", {}) == []
    assert kind.judge_background(c, "exited", 2, "got ping\n", "", {}) == ["exit status 2, expected 0"]
    assert kind.judge_background(c, "stopped", 143, "got ping\n", "", {}) == []
    assert kind.judge_background(c, "killed", 137, "waiting\n", "", {})[0].startswith("stdout 'waiting'")
    assert "still there after SIGKILL" in kind.judge_background(c, "stuck", None, "got ping\n", "", {})[0]
    assert kind.parse_stop("stopped 143\n") == ("stopped", 143)
    assert kind.parse_stop("exited 0\n") == ("exited", 0)
    assert kind.parse_stop("stuck \n") == ("stuck", None) and kind.parse_stop("") == ("stuck", None)


def test_background_commands_bound_every_wait(tmp_path):
    c = _parse(_module(tmp_path), source="other/prog.c", background=True, stdin="x")
    start = kind.start_command(c, _values(c), 7)
    assert "/tmp/kh-bg/7/in" in start and "< /tmp/kh-bg/7/in > /tmp/kh-bg/7/out 2> /tmp/kh-bg/7/err &" in start
    assert "[ $i -lt 250 ]" in start and start.endswith("cat /tmp/kh-bg/7/pid")
    stop = kind.stop_command(7)
    assert "kill -TERM" in stop and "kill -KILL" in stop and stop.count("[ $i -lt 30 ]") == 2
    assert kind.stop_timeout(60) == 66


# --- discovery and the one-line opt-in ------------------------------------------------------------

def _lkmpg(tmp_path: Path) -> Path:
    d = tmp_path / "lkmpg"
    (d / "other").mkdir(parents=True)
    (d / "chardev2.c").write_text('#include <linux/module.h>\n#include "chardev.h"\n'
                                  "static int __init c_init(void) { return 0; }\nmodule_init(c_init);\n"
                                  'MODULE_LICENSE("GPL");\n')
    (d / "chardev.h").write_text("#include <linux/ioctl.h>\n#define IOCTL_SET_MSG _IOW(100, 0, char *)\n")
    (d / "other" / "userspace_ioctl.c").write_text('#include "../chardev.h"\n#include <stdio.h>\n'
                                                   "int main(void)\n{\n\treturn 0;\n}\n")
    (d / "other" / "cat_nonblock.c").write_text("#include <stdio.h>\nint main(int argc, char *argv[]) { }\n")
    (d / "other" / "notes.c").write_text("/* int main(void) in a comment only */\nint helper(void);\n")
    return d


def test_discovery_in_an_lkmpg_layout(tmp_path):
    d = _lkmpg(tmp_path)
    found = companions.discover(d)
    assert [c.source for c in found] == ["other/cat_nonblock.c", "other/userspace_ioctl.c"]
    assert found[1].includes == ("../chardev.h",) and found[1].expected is None
    text = companions.listing(d)
    assert 'programs = ["other/userspace_ioctl.c"]' in text and "includes ../chardev.h" in text
    assert 'programs = ["other/cat_nonblock.c", "other/userspace_ioctl.c"]' in text


def test_discovery_of_a_test_pair_tests_and_user_folders(tmp_path):
    d = tmp_path / "shm"
    for sub in ("tests", "user-tools", "src"):
        (d / sub).mkdir(parents=True)
    (d / "shm.c").write_text("#include <linux/module.h>\nmodule_init(x);\n")
    (d / "test.c").write_text("#include <stdio.h>\nint main(void) { return 0; }\n")
    (d / "test.expected").write_text("ok\n")
    (d / "tests" / "t1.c").write_text("static int main(void) { return 0; }\n")
    (d / "user-tools" / "ctl.c").write_text("void main() {}\n")
    (d / "src" / "other.c").write_text("int main(void) { return 0; }\n")     # not a conventional folder
    found = companions.discover(d)
    assert [(c.source, c.expected) for c in found] == [("test.c", "test.expected"), ("tests/t1.c", None),
                                                       ("user-tools/ctl.c", None)]
    assert companions.discover(tmp_path / "lkmpg-missing") == []
    assert "no companion programs found" in companions.listing(tmp_path)


def test_the_programs_line_is_program_checks_with_the_defaults_discovery_found(tmp_path):
    d = _lkmpg(tmp_path)
    (d / "other" / "userspace_ioctl.expected").write_text("ok\n")
    (d / "kharness.toml").write_text('programs = ["other/userspace_ioctl.c"]\n[[check]]\nrun = "true"\n')
    cfg = load_config(d)
    assert [c.kind for c in cfg.checks] == ["run", "program"]
    prog = cfg.checks[1]
    assert prog.name == "other/userspace_ioctl.c" and prog.source == (str(d / "other" / "userspace_ioctl.c"),)
    assert prog.expect_stdout_file == str(d / "other" / "userspace_ioctl.expected")
    (d / "kharness.toml").write_text('programs = "discovered"\n')
    assert [c.name for c in load_config(d).checks] == ["other/userspace_ioctl.c", "other/cat_nonblock.c"]
    (d / "kharness.toml").write_text('programs = ["other/missing.c"]\n')
    with pytest.raises(UsageError, match=r"kharness.toml: programs: other/missing.c does not exist"):
        load_config(d)
    (d / "kharness.toml").write_text('programs = "all"\n')
    with pytest.raises(UsageError, match=r"programs: must be a list of C files"):
        load_config(d)


def test_a_top_level_test_program_is_no_module_source():
    plan = plan_build(FIXTURES / "progbuf")
    assert [(m.name, m.objs) for m in plan.modules] == [("progbuf", ())]


# --- the payload -----------------------------------------------------------------------------------

def test_the_initrd_carries_programs_executable_under_kh_bin():
    entries = {name: mode for name, mode, _ in read_newc(payload_cpio({"m.ko": b"ko", "bin/test": b"\x7fELF"}))}
    assert stat.S_ISDIR(entries["kh/bin"]) and stat.S_IMODE(entries["kh/bin"]) == 0o755
    assert stat.S_IMODE(entries["kh/bin/test"]) == 0o755 and stat.S_IMODE(entries["kh/m.ko"]) == 0o644
    names = [n for n, _, _ in read_newc(payload_cpio({"bin/a": b"a", "bin/b": b"b"}))]
    assert names.index("kh/bin") < names.index("kh/bin/a")


