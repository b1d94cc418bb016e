"""Unit tests for choosing how a module is built (kharness.build.makefile.build_way), the own
Makefile's variables (kharness.build.ownmake) and the build's view (kharness.build.buildview):
no make, no compiler."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness.build import buildview
from kharness.build.makefile import build_way, own_makefile, plan_build
from kharness.build.ownmake import make_vars
from kharness.build.toolchain import Toolchain
from kharness.kernels.store import HeadersBundle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
TC = Toolchain("x86", "", "gcc-12", "gcc-12 (Debian 12.2.0-14) 12.2.0", debian_arch="amd64")
ARM = Toolchain("arm64", "aarch64-linux-gnu-", "aarch64-linux-gnu-gcc-12", "gcc 12", debian_arch="arm64")


def headers(tmp_path: Path) -> HeadersBundle:
    build = tmp_path / "hdr" / "usr" / "src" / "linux-headers-6.1.0-50-amd64"
    build.mkdir(parents=True)
    return HeadersBundle("6.1.0-50-amd64", tmp_path / "hdr", build)


@pytest.mark.parametrize("fixture, way", [
    ("dkms_mod", "dkms"),
    ("netfilter_configure", "dkms"),
    ("ldd3_style/misc-modules", "own-makefile"),
    ("relinc/mod", "own-makefile"),
    ("kdir_makefile", "own-makefile"),
    ("expected_fail", "kbuild"),
    ("multifile", "kbuild"),
])
def test_each_fixture_is_built_the_way_its_files_ask(fixture, way):
    assert build_way(plan_build(FIXTURES / fixture)) == way


def test_a_dkms_conf_decides_even_without_top_level_sources():
    plan = plan_build(FIXTURES / "dkms_mod")   # its .c is in src/: a generated build would refuse
    assert plan.own_rules.name == "dkms.conf" and not plan.generated and plan.modules == ()


def test_listed_sources_override_a_dkms_conf():
    plan = plan_build(FIXTURES / "netfilter_configure", sources=["xt_khmark.c"])
    assert build_way(plan) == "kbuild" and plan.generated


def test_a_makefile_of_obj_m_lines_only_is_kbuild(tmp_path):
    (tmp_path / "Makefile").write_text("obj-m := a.o\na-objs := x.o y.o\nccflags-y += -DX=1\nKDIR ?= /k\n.PHONY: all\n")
    (tmp_path / "x.c").write_text("int x;\n")
    assert own_makefile(tmp_path) is None
    assert build_way(plan_build(tmp_path)) == "kbuild"


def test_make_reads_gnumakefile_first(tmp_path):
    (tmp_path / "GNUmakefile").write_text("obj-m := a.o\n")
    (tmp_path / "Makefile").write_text("obj-m := a.o\nall:\n\t$(MAKE) -C $(KDIR) M=$(CURDIR)\n")
    assert own_makefile(tmp_path) is None


def test_a_makefile_with_rules_but_no_obj_m_is_not_the_module_s_build(tmp_path):
    """One that builds user-space tools only: the module is built from a generated Kbuild."""
    (tmp_path / "Makefile").write_text("tool: tool.c\n\tcc -o tool tool.c\n")
    (tmp_path / "mod.c").write_text("module_init(x);\n")
    assert build_way(plan_build(tmp_path)) == "kbuild"


def test_own_makefile_gets_the_kernel_under_every_name(tmp_path):
    h = headers(tmp_path)
    (tmp_path / "Makefile").write_text("obj-m := a.o\nall:\n\t$(MAKE) -C $(KDIR) M=$(PWD)\n")
    v = make_vars(tmp_path / "Makefile", h, ARM)
    for name in ("KDIR", "KERNELDIR", "KERNEL_DIR", "KSRC", "KERNEL_SRC"):
        assert f"{name}={h.build_dir}" in v
    for name in ("KVER", "KVERSION"):
        assert f"{name}=6.1.0-50-amd64" in v
    assert "ARCH=arm64" in v and "CROSS_COMPILE=aarch64-linux-gnu-" in v and "CC=aarch64-linux-gnu-gcc-12" in v
    assert "KERNELRELEASE=6.1.0-50-amd64" in v


def test_kernelrelease_is_not_given_to_a_makefile_that_tests_it(tmp_path):
    """`ifneq ($(KERNELRELEASE),)` tells kbuild's reading from the user's make: set on the
    command line it would send the user's make into the kbuild branch."""
    h = headers(tmp_path)
    v = make_vars(FIXTURES / "ldd3_style" / "misc-modules" / "Makefile", h, TC)
    assert not any(x.startswith("KERNELRELEASE=") for x in v)
    assert "KERNELDIR=" + str(h.build_dir) in v


def test_the_uname_shim_answers_for_the_target(tmp_path):
    shim = buildview.uname_shim(tmp_path / "bin", "6.1.0-50-arm64", "aarch64") / "uname"
    run = lambda *a: subprocess.run([str(shim), *a], capture_output=True, text=True, timeout=10).stdout.strip()  # noqa: E731
    assert run("-r") == "6.1.0-50-arm64"
    assert run("-m") == "aarch64"
    assert run("-s") == "Linux"   # everything else is the real uname's


@pytest.mark.parametrize("debian, machine", [("amd64", "x86_64"), ("arm64", "aarch64"), ("armhf", "armv7l"),
                                             ("ppc64el", "ppc64le"), ("ppc64", "ppc64")])
def test_dkms_arch_is_uname_m_of_the_target(debian, machine):
    assert buildview.machine(Toolchain("x", "", "gcc", "gcc", debian_arch=debian)) == machine


@pytest.mark.skipif(not buildview.bwrap_works(), reason="bubblewrap cannot make a namespace here")
def test_the_view_has_the_kernel_at_lib_modules_and_the_user_tree_read_only(tmp_path):
    h = headers(tmp_path)
    (h.build_dir / "Makefile").write_text("# the headers\n")
    user, bdir = tmp_path / "user", tmp_path / "cache" / "b"
    user.mkdir()
    bdir.mkdir(parents=True)
    script = ('cat /lib/modules/6.1.0-50-amd64/build/Makefile; uname -r; '
              f'touch {user}/x 2>/dev/null && echo user-writable; touch {bdir}/y && echo bdir-writable')
    argv, env = buildview.command(["sh", "-c", script], tc=TC, headers=h, bdir=bdir, cwd=bdir,
                                  user_dirs=[user], env={"LC_ALL": "C"})
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.splitlines() == ["# the headers", "6.1.0-50-amd64", "bdir-writable"], p.stderr
    assert not (user / "x").exists()


def test_a_sysroot_build_gets_the_view_among_its_mounts(tmp_path):
    h = headers(tmp_path)
    tc = Toolchain("x86", "", "gcc-14", "gcc 14", sysroot=tmp_path / "sysroot", debian_arch="amd64")
    argv, env = buildview.command(["make"], tc=tc, headers=h, bdir=tmp_path / "b", cwd=tmp_path / "b",
                                  user_dirs=[], env={"X": "1"})
    assert env is None and argv[-1] == "make"
    view = argv.index("--symlink")
    assert argv[view:view + 3] == ["--symlink", str(h.build_dir), "/lib/modules/6.1.0-50-amd64/build"]
    assert view < argv.index("--chdir")
    path = argv[argv.index("PATH") + 1]
    assert path.startswith(str(tmp_path / "b" / "khbin") + ":")


@pytest.mark.parametrize("own_error, diagnosed, remembered", [
    ("failed (exit -1)", False, False),        # timed out on a busy host: try again next time
    ("failed (exit 127)", False, False),       # make missing: the host's problem
    ("built no .ko file", False, True),        # the same inputs make no module again
    ("failed: a.c:1: error: x", True, True),   # a compiler error: the same again
])
def test_only_a_failure_that_would_repeat_is_remembered(tmp_path, monkeypatch, own_error, diagnosed, remembered):
    from kharness.build import kbuild, ownmake
    from kharness.build.diagnostics import Diagnostic
    from kharness.build.kbuild import BuildOutcome

    bdir = tmp_path / "b"
    bdir.mkdir()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "Makefile").write_text("all:\n\ttrue\n")
    plan = SimpleNamespace(directory=tmp_path / "m")
    diags = [Diagnostic("a.c", 1, 0, "error", "x")] if diagnosed else []
    monkeypatch.setattr(ownmake, "own_makefile", lambda d: d / "Makefile")
    monkeypatch.setattr(kbuild, "build_dir", lambda *a: bdir)
    monkeypatch.setattr(kbuild, "reuse", lambda *a: None)
    monkeypatch.setattr(kbuild, "manifest_inputs", lambda *a: {})
    monkeypatch.setattr(ownmake, "_build", lambda *a: BuildOutcome(False, [], diags, "", 0.0, False, ["make"], bdir,
                                                                   None, error=own_error))
    monkeypatch.setattr(kbuild, "run_kbuild", lambda *a, **k: BuildOutcome(True, [], [], "", 0.0, False, ["make"],
                                                                            bdir, None))
    ownmake.run_own_makefile(plan, None, None)
    assert (bdir / ownmake.FALLBACK).exists() == remembered
