"""Real builds (no boot) of modules as their own files ask: a dkms.conf, an own Makefile, kbuild.

Each fixture is copied to a temporary directory first, and its files are compared after the
build: the build must not have written into it."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest

from conftest import require_series

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"


@pytest.fixture(scope="module")
def x86():
    from kharness.build.toolchain import pick_toolchain
    from kharness.kernels.resolve import resolve_kernel
    from kharness.kernels.store import ensure_headers
    from kharness.targets import get_target

    require_series("x86_64", "6.1")
    prof = get_target("x86_64")
    spec = resolve_kernel(prof, "6.1")
    return ensure_headers(spec), pick_toolchain(prof, spec)


def _copy(tmp_path: Path, fixture: str) -> Path:
    top = fixture.split("/")[0]
    shutil.copytree(FIXTURES / top, tmp_path / top, symlinks=True)
    return tmp_path / fixture


def _state(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            for p in sorted(d.rglob("*")) if p.is_file()}


def _build(plan_dir: Path, x86, **kw):
    from kharness.build.makefile import plan_build
    from kharness.build.route import build_module

    headers, tc = x86
    tc = kw.pop("tc", tc)
    return build_module(plan_build(plan_dir), headers, tc, **kw)


def test_dkms_conf_pre_build_make_and_location(tmp_path, x86):
    d = _copy(tmp_path, "dkms_mod")
    before = _state(tmp_path)
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == "dkms"
    assert [m.name for m in o.modules] == ["dkms_mod"]
    ko = o.modules[0].path
    assert ko.parts[-5:] == ("dkms_mod", "1.2", "build", "src", "dkms_mod.ko")
    assert o.modules[0].vermagic.split()[0] == x86[0].release
    # PRE_BUILD got the target's release, and wrote its header into the build copy only.
    assert f'"{x86[0].release}"' in (ko.parent / "dkms_mod_gen.h").read_text()
    assert _state(tmp_path) == before
    assert o.extra["dkms"]["package"] == "dkms_mod" and o.extra["dkms"]["pre_build"].startswith("gen_header.sh ")
    again = _build(d, x86)
    assert again.cached and again.built_by == "dkms" and [m.path for m in again.modules] == [ko]


def test_dkms_build_exclusive_arch_skips_ppc64(tmp_path, x86):
    """The fixture's BUILD_EXCLUSIVE_ARCH leaves out big-endian ppc64: its cell is skipped, with
    the reason, before anything is built (here: x86's headers, the toolchain said to be ppc64's)."""
    from kharness.build.dkms import BuildExcluded

    d = _copy(tmp_path, "dkms_mod")
    with pytest.raises(BuildExcluded) as e:
        _build(d, x86, tc=dataclasses.replace(x86[1], debian_arch="ppc64"))
    assert e.value.reason == "dkms.conf builds only for architecture '^(x86_64|aarch64|arm.*|ppc64le)$', not ppc64"


def test_dkms_configure_pre_build_and_no_user_space_as_kernel_code(tmp_path, x86):
    d = _copy(tmp_path, "netfilter_configure")
    before = _state(tmp_path)
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == "dkms" and [m.name for m in o.modules] == ["xt_khmark"]
    assert "config.status: creating Makefile" in o.log
    assert _state(tmp_path) == before and not (d / "Makefile").exists()


def test_without_its_dkms_conf_the_netfilter_module_cannot_build(tmp_path, x86):
    """What the issue saw: the generated build compiles the iptables plugin as kernel code."""
    d = _copy(tmp_path, "netfilter_configure")
    (d / "dkms.conf").unlink()
    o = _build(d, x86)
    assert not o.ok and o.built_by == "kbuild"
    assert any("libxt_khmark.c" in (x.file or "") for x in o.diagnostics if x.severity == "error"), o.log


def test_ldd3_style_makefile_passes_its_variable(tmp_path, x86):
    from kharness.build.kbuild import run_kbuild
    from kharness.build.makefile import plan_build

    d = _copy(tmp_path, "ldd3_style/misc-modules")
    before = _state(tmp_path)
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == "own-makefile" and o.note == ""
    assert sorted(m.name for m in o.modules) == ["lddhello", "lddshared"]
    assert _state(tmp_path) == before
    # kbuild M= alone: EXTRA_CFLAGS' -I$(LDDINC) is a bare -I that swallows the next flag.
    plain = run_kbuild(plan_build(d), *x86)
    assert not plain.ok


def test_a_default_target_that_builds_no_module_falls_back_to_kbuild(tmp_path, x86):
    d = tmp_path / "noop_target"
    d.mkdir()
    (d / "Makefile").write_text("obj-m := noop_target.o\n\nall:\n\t@echo this default target builds nothing\n")
    (d / "noop_target.c").write_text((FIXTURES / "good_chatty" / "good_chatty.c").read_text())
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == "kbuild"
    assert o.note == "the Makefile's default target built no .ko file; built with kbuild M= instead"
    assert "this default target builds nothing" in o.log
    again = _build(d, x86)
    assert again.cached and again.built_by == "kbuild" and again.note == o.note


def test_an_own_makefile_cannot_write_next_to_the_users_files(tmp_path, x86):
    from kharness.build import buildview

    if not buildview.bwrap_works():
        pytest.skip("bubblewrap cannot make a namespace here: the user's tree is not mounted read-only")
    d = _copy(tmp_path, "relinc/mod")
    mk = d / "Makefile"
    mk.write_text(mk.read_text().replace("modules:\n", "modules:\n\t-echo '#define X 1' > ../include/written.h\n"))
    before = _state(tmp_path)
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == "own-makefile"
    assert "Read-only file system" in o.log
    assert _state(tmp_path) == before


@pytest.mark.parametrize("fixture, way, names", [
    ("relinc/mod", "own-makefile", ["relinc"]),
    ("kdir_makefile", "own-makefile", ["kdirmod"]),
    ("expected_fail", "kbuild", ["jiq", "kdataalign", "kdatasize", "silly"]),
])
def test_the_other_fixtures(tmp_path, x86, fixture, way, names):
    d = _copy(tmp_path, fixture)
    o = _build(d, x86)
    assert o.ok, o.log
    assert o.built_by == way and sorted(m.name for m in o.modules) == names
