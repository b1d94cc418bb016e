"""Bad input: one line on stderr, exit code 2, no traceback, nothing booted."""

from __future__ import annotations

import re

import pytest

from conftest import EXAMPLES


@pytest.mark.parametrize("args,needle", [
    (["run", "/nonexistent/module"], "does not exist"),
    (["run", str(EXAMPLES / "hello"), "--kernel", "9.9"], "series 9.9 is not in the archive; it offers: "),
    (["run", str(EXAMPLES / "hello"), "--kernel", "6.1.0-1-amd64"], "available 6.1 releases"),
    (["run", str(EXAMPLES / "hello"), "--target", "sparc"], "known targets"),
    (["run", str(EXAMPLES / "hello"), "--param", "novalue"], "is not KEY=VALUE"),
    (["run", str(EXAMPLES / "hello"), "--accel", "warp"], "unknown accelerator"),
    (["run", str(EXAMPLES / "hello"), "--debug", "kasan,kcsan"], "unknown debug checker(s) kcsan"),
    (["run", str(EXAMPLES / "hello"), "--target", "rpi3", "--kernel", "6.1-debug"],
     "cannot build a debug kernel for rpi3"),
])
def test_usage_errors(kharness, args, needle):
    o = kharness(*args)
    assert o.rc == 2
    assert needle in o.stderr
    assert "Traceback" not in o.stderr
    assert o.stderr.count("kharness: error:") == 1
    assert o.result["status"] == "error" and o.result["error"]["kind"] == "usage"


def test_directory_without_sources(kharness, tmp_path):
    (tmp_path / "empty").mkdir()
    o = kharness("run", str(tmp_path / "empty"))
    assert o.rc == 2 and "no .c files" in o.stderr


def test_invalid_module_name(kharness, tmp_path):
    d = tmp_path / "9bad"
    d.mkdir()
    (d / "a.c").write_text("int a;\n")
    (d / "b.c").write_text("int b;\n")
    o = kharness("run", str(d))
    assert o.rc == 2 and "invalid module name" in o.stderr


def test_bad_kharness_toml_names_file_and_check(kharness, tmp_path):
    d = tmp_path / "mod"
    d.mkdir()
    (d / "mod.c").write_text("int x;\n")
    (d / "kharness.toml").write_text('[[check]]\nname = "reads"\nrun = "true"\nexpect_stdot = "x"\n')
    o = kharness("run", str(d))
    assert o.rc == 2
    assert "kharness.toml" in o.stderr and "reads" in o.stderr and "expect_stdot" in o.stderr


@pytest.mark.parametrize("toml,needles", [
    ('[gpio]\nlines = 8\n[[check]]\nname = "btn"\nkind = "gpio"\nline = 17\npulse = 5\n',
     ["check #1 (btn)", "'line' 17 is out of range", "lines 0 to 7"]),
    ('[[check]]\nname = "get"\nkind = "ioctl"\ndevice = "/dev/x"\nrequest = "_IOR(\'k\', 1, 4)"\n'
     'expect_out = [["u33", 1]]\n', ["check #1 (get)", "u33"]),
    ('[[check]]\nname = "cd"\nkind = "chardev"\ndevice = "/dev/x"\nsteps = [{ read = 4, write = "x" }]\n',
     ["check #1 (cd)", "step 1", "exactly one action"]),
    ('[[check]]\nname = "k"\nkind = "gpoi"\n', ["check #1 (k)", "unknown check kind 'gpoi'"]),
])
def test_bad_checks_fail_before_anything_boots(kharness, tmp_path, toml, needles):
    d = tmp_path / "mod"
    d.mkdir()
    (d / "mod.c").write_text("int x;\n")
    (d / "kharness.toml").write_text(toml)
    o = kharness("run", str(d))
    assert o.rc == 2 and o.stderr.count("\n") <= 2, o.stderr
    assert all(n in o.stderr for n in needles), o.stderr
    assert o.result is None or o.result["phases"][2]["status"] != "pass"   # nothing booted


def test_missing_qemu_is_an_infrastructure_error(kharness, tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, PATH=str(tmp_path))  # no qemu-system-* anywhere
    p = subprocess.run([sys.executable, "-m", "kharness", "run", str(EXAMPLES / "hello")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert "qemu-system-x86_64 is not installed" in p.stderr


def test_version_and_help(kharness):
    o = kharness("--version", json_out=False)
    assert o.rc == 0 and o.stdout.startswith("kharness ")
    for cmd in ([], ["run"], ["kernels"], ["targets"]):
        h = kharness(*cmd, "--help", json_out=False)
        assert h.rc == 0 and "Usage" in h.stdout


def _column(table: str, name: str) -> list[str]:
    """The cells of one column of a table `kharness kernels` prints, found by its header (a bare
    "6.1" also occurs inside "6.12", in releases and in "linux-source-6.1")."""
    rows = [[c.strip() for c in line.strip()[1:-1].replace("┃", "│").split("│")]
            for line in table.splitlines() if line.strip()[:1] in ("│", "┃")]
    header = next((r for r in rows if name in r), None)
    assert header is not None, table
    i = header.index(name)
    return [r[i] for r in rows if r is not header and len(r) == len(header) and r[i]]


def test_kernels_lists_every_series(kharness):
    o = kharness("kernels", json_out=False)
    assert o.rc == 0
    # Each cell's whole series ("6.1*": * marks the one --kernel picks), so "6.1" cannot pass on "6.12".
    series = {m.group() for c in _column(o.stdout, "series") if (m := re.match(r"\d+\.\d+(?![\d.])", c))}
    for want in ("5.10", "6.1", "6.12", "7.2"):
        assert want in series, (want, series, o.stdout)


def test_targets_lists_every_board(kharness):
    o = kharness("targets", json_out=False)
    assert o.rc == 0
    for t in ("x86_64", "arm64", "rpi3", "rpi2", "ppc64le", "ppc64"):
        assert t in o.stdout


def test_image_build_prints_the_cached_image(kharness):
    import pathlib
    o = kharness("image", "build", "--target", "x86_64", "--kernel", "6.1", json_out=False)
    assert o.rc == 0, o.stderr
    paths = {line.split()[0]: line.split()[1] for line in o.stdout.splitlines() if line.strip()}
    assert pathlib.Path(paths["kernel"]).is_file() and pathlib.Path(paths["initramfs"]).is_file()
    assert paths["release"].startswith("6.1.")


def test_image_build_snapshot_is_the_one_run_restores(kharness):
    import pathlib
    o = kharness("image", "build", "--target", "x86_64", "--kernel", "6.1", "--snapshot", json_out=False)
    assert o.rc == 0, o.stderr
    snap = pathlib.Path(next(ln.split()[1] for ln in o.stdout.splitlines() if ln.startswith("snapshot")))
    assert snap.is_file() and snap.stat().st_size > 1 << 20
    r = kharness("run", "examples/hello", "--kernel", "6.1")
    assert r.rc == 0 and r.result["boot_mode"] == "snapshot" and r.result["image"]["snapshot"] == str(snap)


def test_cache_ls(kharness):
    o = kharness("cache", "ls", json_out=False)
    assert o.rc == 0 and "total" in o.stdout


def test_kernel_build_needs_a_source_for_debian_targets(kharness):
    o = kharness("kernel", "build", "--target", "x86_64", json_out=False)
    assert o.rc == 2 and "--source" in o.stderr


def test_new_and_makefile(kharness, tmp_path):
    o = kharness("new", "9bad", "--dir", str(tmp_path / "x"), json_out=False)
    assert o.rc == 2 and "invalid module name '9bad'" in o.stderr and o.stderr.count("\n") == 1
    o = kharness("new", "ok", "-t", "nope", "--dir", str(tmp_path / "x"), json_out=False)
    assert o.rc == 2 and "unknown template 'nope'" in o.stderr
    o = kharness("new", "ok", "--author", 'Eve"); evil("', "--dir", str(tmp_path / "x"), json_out=False)
    assert o.rc == 2 and "cannot go into the generated files" in o.stderr and not (tmp_path / "x").exists()
    o = kharness("new", "mf", "-t", "multifile", "--dir", str(tmp_path / "mf"), json_out=False)
    assert o.rc == 0 and (tmp_path / "mf" / "mf_util.c").is_file()
    o = kharness("new", "mf", "-t", "hello", "--dir", str(tmp_path / "mf"), json_out=False)
    assert o.rc == 2 and "already exists" in o.stderr
    o = kharness("makefile", str(tmp_path / "mf"), json_out=False)
    assert o.rc == 2 and "has its own build rules" in o.stderr
    o = kharness("makefile", str(tmp_path / "mf"), "--stdout", json_out=False)
    assert o.rc == 0 and "mf-objs := mf_main.o mf_util.o" in o.stdout
    for cmd in ("new", "makefile"):
        help_ = kharness(cmd, "--help", json_out=False).stdout
        assert all(f"{t}:" in help_ for t in ("hello", "params", "procfs", "sysfs", "chardev", "gpio-irq",
                                                "multifile", "aix-kext")), cmd
