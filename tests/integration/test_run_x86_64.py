"""`kharness run` end to end on x86_64 with Debian's 6.1 kernel (the default): each test boots."""

from __future__ import annotations

import subprocess

import pytest

from conftest import EXAMPLES, FIXTURES

pytestmark = pytest.mark.vm


def _no_traceback(o):
    assert "Traceback" not in o.stderr and "Traceback" not in o.stdout


def test_hello_passes_with_its_parameters(kharness):
    o = kharness("run", str(EXAMPLES / "hello"))
    assert o.rc == 0, o.stderr
    r = o.result
    assert r["schema"] == "kharness/result/v1"
    assert r["status"] == "pass"
    assert r["kernel"]["release"].startswith("6.1.") and r["kernel"]["release"].endswith("-amd64")
    assert r["accelerator"] in ("tcg", "kvm") and r["accelerator_note"]
    assert [p["status"] for p in r["phases"]] == ["pass"] * 6
    checks = {c["name"]: c for c in r["checks"]}
    assert checks["myint parameter is visible in sysfs"]["stdout"].strip() == "5"
    assert r["params"] == {"hello": {"myint": "5", "mystring": "hi"}}
    assert "hello: myint is 5" in r["dmesg"]["load"]
    assert "hello: goodbye" in r["dmesg"]["unload"]
    assert set(r["taint"]["flags"]) <= {"O", "E"}
    assert r["reproducer"]["kharness"].startswith("kharness run ")
    assert "qemu-system-x86_64" in r["reproducer"]["qemu"]


def test_cli_params_override_the_toml_and_expectations_can_fail(kharness):
    o = kharness("run", str(EXAMPLES / "hello"), "--param", "myint=7", "--param", "mystring=hello world")
    assert o.rc == 1
    r = o.result
    assert r["status"] == "fail"
    assert r["params"]["hello"] == {"myint": "7", "mystring": "hello world"}
    # The module really got the values (a space survives the trip through insmod)...
    assert "hello: myint is 7" in r["dmesg"]["load"]
    assert "hello world" in r["dmesg"]["load"]
    # ...and kharness.toml's expect_dmesg for myint=5 says so.
    assert o.phase("load")["status"] == "fail"
    assert "expect_dmesg" in o.phase("load")["message"]


def test_a_failing_check_fails_the_run(kharness, tmp_path):
    import shutil
    d = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", d)
    toml = (d / "kharness.toml").read_text().replace("expect_stdout = '^5$'", "expect_stdout = '^6$'")
    (d / "kharness.toml").write_text(toml)
    o = kharness("run", str(d))
    assert o.rc == 1
    failed = [c for c in o.result["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["myint parameter is visible in sysfs"]
    assert failed[0]["stdout"].strip() == "5"
    assert "does not match" in failed[0]["message"]
    assert o.phase("check")["status"] == "fail"
    # A failed check does not hide the unload: it still runs and is judged.
    assert o.phase("unload")["status"] == "pass"
    assert "hello: goodbye" in o.result["dmesg"]["unload"]


def test_procfs_read_and_write(kharness):
    o = kharness("run", str(EXAMPLES / "procfs"))
    assert o.rc == 0, o.stderr
    assert all(c["status"] == "pass" for c in o.result["checks"]) and len(o.result["checks"]) == 6


def test_build_error_is_a_structured_failure(kharness):
    o = kharness("run", str(FIXTURES / "build_error"))
    assert o.rc == 1
    _no_traceback(o)
    assert o.phase("build")["status"] == "fail"
    diags = [d for d in o.result["build"]["diagnostics"] if d["severity"] == "error"]
    assert diags and diags[0]["file"] == str(FIXTURES / "build_error" / "build_error.c")
    assert diags[0]["line"] > 0 and "undeclared" in diags[0]["message"]
    assert o.phase("boot")["status"] == "skipped"


def test_init_returning_enodev_fails_the_load(kharness):
    o = kharness("run", str(FIXTURES / "init_enodev"))
    assert o.rc == 1
    assert o.phase("load")["status"] == "fail"
    assert "No such device" in o.phase("load")["message"]


def test_oops_in_init_is_reported_with_the_kernel_report(kharness):
    o = kharness("run", str(FIXTURES / "init_oops"))
    assert o.rc == 1
    assert o.phase("load")["status"] == "fail"
    crash = next(f for f in o.result["findings"] if f["kind"] in ("null_deref", "oops"))
    assert crash["module"] == "init_oops"
    assert "Call Trace" in crash["report"]
    assert "taint" in o.kinds()  # D: the kernel died in the module


def test_panic_in_init_never_looks_like_success(kharness):
    o = kharness("run", str(FIXTURES / "init_panic"))
    assert o.rc == 1
    assert o.phase("load")["status"] == "fail"
    assert "panic" in o.kinds()
    assert "deliberate panic" in o.phase("load")["message"]


def test_init_that_never_returns_is_a_timeout_with_a_backtrace(kharness):
    o = kharness("run", str(FIXTURES / "init_hang"), "--timeout", "10")
    assert o.rc == 1
    assert o.phase("load")["status"] == "fail"
    hang = next(f for f in o.result["findings"] if f["kind"] == "hang")
    assert "init_hang_init" in hang["summary"]
    assert "Show Blocked State" in hang["report"]


def test_warn_in_init_fails(kharness):
    o = kharness("run", str(FIXTURES / "init_warn"))
    assert o.rc == 1
    assert "warning" in o.kinds()
    w = next(f for f in o.result["findings"] if f["kind"] == "warning")
    assert str(FIXTURES / "init_warn" / "init_warn.c") in w["summary"]  # the user's path, not the build tree's


def test_bug_in_exit_fails_the_unload(kharness):
    o = kharness("run", str(FIXTURES / "exit_bug"))
    assert o.rc == 1
    assert o.phase("load")["status"] == "pass"
    assert o.phase("unload")["status"] == "fail"
    assert "bug" in o.kinds()


@pytest.mark.parametrize("moddir", ["good_chatty", "kdir_makefile", "relinc/mod", "multifile", "twomods"])
def test_real_world_layouts_pass(kharness, moddir):
    before = sorted(p.name for p in (FIXTURES / moddir).rglob("*"))
    o = kharness("run", str(FIXTURES / moddir))
    assert o.rc == 0, (o.stdout, o.stderr)
    after = sorted(p.name for p in (FIXTURES / moddir).rglob("*"))
    assert before == after, "kharness wrote into the module directory"
    if moddir == "twomods":
        assert [m["name"] for m in o.result["modules"]] == ["alpha", "beta"]


def test_keep_leaves_the_run_directory_and_no_qemu_behind(kharness):
    o = kharness("run", str(FIXTURES / "init_hang"), "--timeout", "8", "--keep")
    assert o.rc == 1
    run_dir = o.result["artifacts"]["run_dir"]
    assert "sysrq" in open(f"{run_dir}/console.log").read()
    leftover = subprocess.run(["pgrep", "-f", run_dir], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "a QEMU process outlived its run"
    subprocess.run(["rm", "-rf", run_dir], check=True)


@pytest.mark.parametrize("series", ["5.10", "6.12", "7.2"])
def test_other_kernel_series(kharness, series):
    o = kharness("run", str(EXAMPLES / "hello"), "--kernel", series)
    assert o.rc == 0, o.stderr
    assert o.result["kernel"]["series"] == series
    assert o.result["compiler"]
    if series == "7.2":  # built with sid's gcc-16 in a build environment
        assert "gcc-16" in o.result["compiler"] and "build environment" in o.result["compiler"]


def test_check_kinds_judge_real_reads_writes_and_errnos(kharness, tmp_path):
    import shutil
    d = tmp_path / "procfs"
    shutil.copytree(EXAMPLES / "procfs", d)
    (d / "kharness.toml").write_text('''
[[check]]
name = "wrong content"
kind = "proc"
path = "/proc/procfs_demo"
expect = "nope"

[[check]]
name = "a write that succeeds but was expected to fail"
kind = "proc"
path = "/proc/procfs_demo"
write = "x"
expect_errno = "EINVAL"

[[check]]
name = "an oversized write"
kind = "proc"
path = "/proc/procfs_demo"
write = "''' + "y" * 1100 + '''"
expect_errno = "EINVAL"

[[check]]
name = "an oversized write, wrongly expected to work"
kind = "proc"
path = "/proc/procfs_demo"
write = "''' + "y" * 1100 + '''"

[[check]]
name = "a missing file"
kind = "proc"
path = "/proc/not_there"

[[check]]
name = "a step that logs"
run = "echo kh-test-marker > /dev/kmsg"

[[check]]
name = "what the previous step logged is forbidden"
kind = "dmesg"
forbid = "kh-test-marker"
''')
    o = kharness("run", str(d))
    assert o.rc == 1
    msgs = {c["name"]: c["message"] for c in o.result["checks"]}
    assert msgs["wrong content"] == "read 'hello from procfs', expected 'nope'"
    assert msgs["a write that succeeds but was expected to fail"] == "write of 'x' succeeded, expected EINVAL"
    assert msgs["an oversized write"] == ""          # EINVAL from write() itself, as expected
    assert msgs["an oversized write, wrongly expected to work"] == \
        "write of '" + "y" * 1100 + "' failed with EINVAL, expected success"
    assert msgs["a missing file"] == "reading /proc/not_there failed: ENOENT"
    assert "forbidden 'kh-test-marker'" in msgs["what the previous step logged is forbidden"]
    # "since the previous step": the load phase's own lines are not seen again
    assert msgs["a step that logs"] == ""
