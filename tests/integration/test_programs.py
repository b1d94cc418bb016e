"""Companion programs in real guests (issue #16): the module's own user-space programs compiled
static for the target, handed to the guest with the module and run there.

progbuf (tests/fixtures/modules/progbuf) is a one-message mailbox with a blocking read; its
``test.c`` must print exactly ``test.expected``, and ``tests/reader.c`` blocks on it in the
background until a later check writes. The same flows through the fake guest, and the build
cache, parsing and judging: tests/unit/test_program_builds.py and test_runner_programs.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import EXAMPLES, FIXTURES, KHARNESS, ROOT, require_series

pytestmark = pytest.mark.vm
PROGBUF = FIXTURES / "progbuf"
EXPECTED = (PROGBUF / "test.expected").read_text()

# What examples/chardev-ioctl/kharness.toml gains to run its own test program.
KHDEMO_TEST = '''
[[check]]
name = "khdemo's own test program (test/khdemo_test.c), built for the target"
kind = "program"
source = "test/khdemo_test.c"
expect_stdout_file = "test/khdemo_test.expected"
'''


def _copy(tmp_path, toml: str | None = None, src=PROGBUF):
    d = tmp_path / src.name
    shutil.copytree(src, d)
    if toml is not None:
        (d / "kharness.toml").write_text(toml)
    return d


def _passed(o) -> None:
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert o.result["status"] == "pass"
    assert [p["status"] for p in o.result["phases"]] == ["pass"] * 6
    assert not o.kinds()


def _check(o, name: str) -> dict:
    return next(c for c in o.result["checks"] if c["name"] == name)


def test_test_program_output_equals_test_expected_and_a_write_unblocks_the_reader(kharness):
    """The fixture as it is (a restored guest where the target has snapshots: the programs are
    delivered with the module): test.c's output equals test.expected exactly, and the reader
    started in the background ended by itself once the later check wrote."""
    require_series("x86_64", "6.1")
    o = kharness("run", str(PROGBUF))
    _passed(o)
    progs = {p["name"]: p for p in o.result["programs"]}
    assert set(progs) == {"test", "reader"}
    assert progs["test"]["guest_path"] == "/kh/bin/test" and progs["test"]["size"] > 0
    assert progs["test"]["target"] == "x86_64" and progs["test"]["sources"] == [str(PROGBUF / "test.c")]
    test = _check(o, "test.c")
    assert (test["status"], test["rc"], test["stdout"]) == ("pass", 0, EXPECTED)
    reader = _check(o, "a reader blocked on the empty mailbox")
    assert reader["background"]["ended"] == "exited" and reader["rc"] == 0
    assert reader["stdout"] == "reader waiting\nreader got: ping\n"
    # A rerun compiles nothing.
    again = kharness("run", str(PROGBUF), "--cold")
    _passed(again)
    assert all(p["cached"] for p in again.result["programs"])
    assert again.result["phases"][0]["message"].endswith("2 program(s) (2 cached)")


def test_a_wrong_expected_output_fails_with_the_diff(kharness, tmp_path):
    require_series("x86_64", "6.1")
    d = _copy(tmp_path, 'programs = ["test.c"]\n')
    (d / "test.expected").write_text(EXPECTED.replace("wrote 21 bytes", "wrote 22 bytes"))
    o = kharness("run", str(d), "--cold")
    assert o.rc == 1, (o.stdout, o.stderr)
    assert o.result["status"] == "fail" and o.phase("check")["status"] == "fail"
    assert o.phase("unload")["status"] == "pass"            # a failed check still unloads
    test = _check(o, "test.c")
    assert test["status"] == "fail" and test["stdout"] == EXPECTED
    assert test["message"].startswith("stdout differs from test.expected:\n--- test.expected\n+++ stdout\n")
    assert "\n-wrote 22 bytes\n+wrote 21 bytes\n" in test["message"]
    assert o.result["summary"].startswith("check: 1 of 1 check(s) failed: test.c: stdout differs")


def test_a_reader_nothing_unblocks_is_stopped_judged_and_the_module_unloads(kharness, tmp_path):
    """Still blocked in the module's read after the last check: stopped with SIGTERM (its exit
    status not judged), its output judged, and rmmod then succeeds (it held the device open)."""
    require_series("x86_64", "6.1")
    d = _copy(tmp_path, '[[check]]\nname = "reader"\nkind = "program"\nsource = "tests/reader.c"\n'
                        "background = true\nexpect_stdout = '\\Areader waiting\\n\\Z'\n\n"
                        '[[check]]\nname = "meanwhile"\nrun = "cat /sys/module/progbuf/parameters/waiting"\n')
    o = kharness("run", str(d), "--cold")
    _passed(o)
    reader = _check(o, "reader")
    assert reader["background"]["ended"] == "stopped" and reader["rc"] == 143
    assert reader["message"] == "background program still running after the last check: stopped with SIGTERM " \
                                "(exit status 143)"
    assert o.result["phases"][5]["log"].strip() == "$ rmmod progbuf"


def test_a_program_that_does_not_compile_fails_the_build(kharness, tmp_path):
    require_series("x86_64", "6.1")
    d = _copy(tmp_path, 'programs = ["test.c"]\n')
    (d / "test.c").write_text((PROGBUF / "test.c").read_text().replace("PROGBUF_LEN,", "PROGBUF_LENGTH,"))
    o = kharness("run", str(d))
    assert o.rc == 1, (o.stdout, o.stderr)
    assert [p["status"] for p in o.result["phases"]] == ["fail"] + ["skipped"] * 5
    assert o.result["summary"].startswith("build: program test did not compile: test.c:")
    assert "'PROGBUF_LENGTH' undeclared" in o.result["summary"]
    assert "PROGBUF_LENGTH" in o.phase("build")["log"]
    assert any(x["severity"] == "error" and x["file"].endswith("test.c") for x in o.result["build"]["diagnostics"])


def test_a_missing_source_is_one_line_and_exit_2_before_any_build(kharness, tmp_path):
    d = _copy(tmp_path, 'programs = ["tests/writer.c"]\n')
    o = kharness("run", str(d))
    assert o.rc == 2
    assert o.stderr.strip() == (f"kharness: error: {d}/kharness.toml: programs: tests/writer.c does not exist "
                                f"(paths are relative to {d}) (see `kharness run DIR --list-programs`)")
    assert o.result["phases"][0]["status"] == "skipped"


def _list(d) -> subprocess.CompletedProcess:
    return subprocess.run([*KHARNESS, "run", str(d), "--list-programs"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_list_programs_lkmpg_layout_and_a_test_pair(tmp_path):
    """Lists, builds nothing and boots nothing: the LKMPG's chardev2.c with other/userspace_ioctl.c
    (including ../chardev.h), and progbuf's test.c + test.expected."""
    d = tmp_path / "lkmpg"
    (d / "other").mkdir(parents=True)
    (d / "chardev2.c").write_text('#include <linux/module.h>\n#include "chardev.h"\n'
                                  "static int __init chardev2_init(void) { return 0; }\n"
                                  'module_init(chardev2_init);\nMODULE_LICENSE("GPL");\n')
    (d / "chardev.h").write_text("#include <linux/ioctl.h>\n#define IOCTL_SET_MSG _IOW(100, 0, char *)\n")
    (d / "other" / "userspace_ioctl.c").write_text('#include "../chardev.h"\n#include <stdio.h>\n'
                                                   "int main(void)\n{\n\treturn 0;\n}\n")
    p = _list(d)
    assert p.returncode == 0 and p.stderr == ""
    assert "  other/userspace_ioctl.c  (exit status 0; includes ../chardev.h)\n" \
           '      programs = ["other/userspace_ioctl.c"]\n' in p.stdout
    assert not (tmp_path / "lkmpg" / "chardev2.ko").exists()
    p = _list(PROGBUF)
    assert p.returncode == 0
    assert '  test.c  (exact output: test.expected; includes progbuf.h)\n      programs = ["test.c"]\n' in p.stdout
    assert '  programs = ["test.c", "tests/reader.c"]' in p.stdout
    p = _list(tmp_path / "missing")
    assert p.returncode == 2 and "does not exist" in p.stderr


@pytest.mark.parametrize("target", ["ppc64", "rpi2"])
def test_the_test_program_on_big_endian_and_32_bit(kharness, tmp_path, target):
    """The same program and expected output on big-endian ppc64 (a kernel kharness builds) and
    32-bit armhf: compiled by each target's cross compiler against its static libc."""
    require_series(target, "6.1")
    o = kharness("run", str(PROGBUF), "--target", target, "--kernel", "6.1", "--boot-timeout", "900")
    _passed(o)
    assert {p["target"] for p in o.result["programs"]} == {target}
    assert _check(o, "test.c")["stdout"] == EXPECTED
    assert _check(o, "a reader blocked on the empty mailbox")["background"]["ended"] == "exited"


@pytest.mark.parametrize("target", ["x86_64", "ppc64", "rpi2"])
def test_chardev_ioctl_example_with_its_own_test_program(kharness, tmp_path, target):
    """examples/chardev-ioctl with its C test program appended as a check: struct kh_msg and the
    KH_* requests from the module's header, as each target's compiler lays them out."""
    require_series(target, "6.1")
    d = _copy(tmp_path, src=EXAMPLES / "chardev-ioctl")
    (d / "kharness.toml").write_text((d / "kharness.toml").read_text() + KHDEMO_TEST)
    o = kharness("run", str(d), "--target", target, "--kernel", "6.1", "--boot-timeout", "900")
    _passed(o)
    prog = o.result["checks"][-1]
    assert prog["name"].startswith("khdemo's own test program") and prog["status"] == "pass"
    assert prog["stdout"] == (EXAMPLES / "chardev-ioctl" / "test" / "khdemo_test.expected").read_text()


def test_the_session_api_runs_programs(monkeypatch, tmp_path):
    """s.program(): compiled for the session's target through the same cache, put into the guest
    and run; a compile error raises; a background program is stopped and judged on request."""
    from kharness.session import ProgramBuildError, session

    require_series("x86_64", "6.1")
    monkeypatch.setenv("KHARNESS_PROGRESS", "0")
    broken = tmp_path / "broken.c"
    broken.write_text("int main(void) { return kharness_undeclared; }\n")
    with session(PROGBUF, kernel="6.1", boot_timeout=600, timeout=120) as s:
        r = s.program("test.c")                     # built with the module (kharness.toml asks for it)
        assert (r.rc, r.stdout, r.stderr) == (0, EXPECTED, "")
        other = s.program("tests/reader.c", cflags=["-DUNUSED=1"], stdin="x", args=["/proc/self/fd/0"])
        assert other.stdout == "reader waiting\nreader got: x\n"   # another build, put into the guest now
        assert s.result.programs[-1]["guest_path"] == "/kh/bin/reader-2"
        bg = s.program("tests/reader.c", args=["/dev/progbuf"], background=True)
        assert bg.background["ended"] == "running"
        s.run("i=0; while [ \"$(cat /sys/module/progbuf/parameters/waiting)\" = 0 ] && [ $i -lt 500 ]; "
              "do usleep 20000; i=$((i+1)); done")
        (stopped,) = s.stop_programs()
        assert stopped is bg and bg.background["ended"] == "stopped" and bg.stdout == "reader waiting\n"
        fed = s.program("tests/reader.c", args=["/proc/self/fd/0"], stdin="from stdin")
        assert fed.stdout == "reader waiting\nreader got: from stdin\n"
        with pytest.raises(ProgramBuildError, match="program broken did not compile: .*kharness_undeclared"):
            s.program(str(broken))
    assert s.result.status == "pass" and s.result.phase("unload").status == "pass"
    assert {p["name"] for p in s.result.programs} >= {"test", "reader"}
