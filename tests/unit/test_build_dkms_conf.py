"""Unit tests for kharness.build.dkms: a dkms.conf sourced by a real bash, in the build's copy,
under a deadline; its variables read back without evaluating anything; DKMS's selections and
BUILD_EXCLUSIVE_* (no kernel headers needed: a directory with a .config stands in for them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kharness.build import dkms
from kharness.errors import UsageError


@pytest.fixture
def ksrc(tmp_path) -> Path:
    d = tmp_path / "headers" / "build"
    d.mkdir(parents=True)
    (d / ".config").write_text("CONFIG_PCI=y\nCONFIG_USB=m\n# CONFIG_DRM is not set\nCONFIG_EMPTY=\n")
    return d


def ctx(ksrc: Path, kernelver="6.1.0-50-amd64", arch="x86_64", **kw) -> dkms.Context:
    return dkms.Context(kernelver, arch, ksrc, ksrc.parent.parent / "dkms", ksrc.parent.parent / "src", **kw)


def conf_in(tmp_path: Path, text: str) -> tuple[Path, Path]:
    """A build copy holding ``text`` as its dkms.conf: (conf, the copy's directory)."""
    build = tmp_path / "copy"
    build.mkdir(exist_ok=True)
    (build / "dkms.conf").write_text(text)
    return build / "dkms.conf", build


BASE = 'PACKAGE_NAME="foo"\nPACKAGE_VERSION="1.0"\n'


def test_records_split_on_nul_and_lose_a_windows_line_end():
    data = "A\x000\x00x\r\x00B\x003\x00two\nlines \"q\" $(no)\x00"
    assert dkms.parse_records(data) == {"A": {"0": "x"}, "B": {"3": "two\nlines \"q\" $(no)"}}


def test_variables_arrays_and_dkms_context(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + r'''
MAKE[0]="make -C ${kernel_source_dir} M=\$(pwd) KVER=${kernelver} ARCHNAME=$arch"
BUILT_MODULE_NAME[0]=foo
BUILT_MODULE_LOCATION[0]=src
BUILT_MODULE_NAME[2]="baz"
DEST_MODULE_LOCATION[0]="/updates"
PRE_BUILD="gen.sh ${kernelver}"
CLEAN="make clean"
echo this output is the conf's own and goes nowhere
''')
    c = dkms.evaluate(conf, ctx(ksrc), cwd=build)
    assert c.package_name == "foo" and c.package_version == "1.0"
    assert c.make_command == f"make -C {ksrc} M=$(pwd) KVER=6.1.0-50-amd64 ARCHNAME=x86_64"
    assert c.get("PRE_BUILD") == "gen.sh 6.1.0-50-amd64"
    assert c.values["BUILT_MODULE_NAME"] == {"0": "foo", "2": "baz"}
    # Two records (the arrays' longest length), the second without a name.
    with pytest.raises(UsageError, match=r"no BUILT_MODULE_NAME\[1\]"):
        c.modules()


def test_one_record_defaults_to_the_package_name_and_locations_end_in_a_slash(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + 'BUILT_MODULE_LOCATION[0]="src"\nDEST_MODULE_LOCATION[0]="/extra"\n')
    assert dkms.evaluate(conf, ctx(ksrc), cwd=build).modules() == [dkms.BuiltModuleSpec("foo", "src/", "foo")]


@pytest.mark.parametrize("line, message", [
    ('BUILT_MODULE_NAME[0]="foo.ko"', "ends in .o or .ko"),
    ('BUILT_MODULE_NAME[0]=foo\nBUILT_MODULE_LOCATION[0]="../elsewhere"', "leaves the module's directory"),
    ('BUILT_MODULE_NAME[0]=foo\nBUILT_MODULE_LOCATION[0]="/abs"', "leaves the module's directory"),
])
def test_module_records_dkms_refuses(tmp_path, ksrc, line, message):
    conf, build = conf_in(tmp_path, BASE + line + "\n")
    with pytest.raises(UsageError, match=message):
        dkms.evaluate(conf, ctx(ksrc), cwd=build).modules()


def test_make_match_picks_the_last_matching_make_and_patch_match_filters(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + r'''
MAKE[0]="make default"
MAKE[1]="make for-5"
MAKE_MATCH[1]="^5\."
MAKE[2]="make for-6"
MAKE_MATCH[2]="^6\."
PATCH[0]="always.patch"
PATCH[1]="only-5.patch"
PATCH_MATCH[1]="^5\."
PATCH[2]="only-6.patch"
PATCH_MATCH[2]="^6\.1"
''')
    c = dkms.evaluate(conf, ctx(ksrc), cwd=build)
    assert c.make_command == "make for-6"
    assert c.patches == ["always.patch", "only-6.patch"]
    c5 = dkms.evaluate(conf, ctx(ksrc, kernelver="5.10.0-32-amd64"), cwd=build)
    assert c5.make_command == "make for-5" and c5.patches == ["always.patch", "only-5.patch"]


def test_make_match_on_make_0_without_a_match_leaves_dkms_default(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + 'MAKE[0]="make old"\nMAKE_MATCH[0]="^2\\.6"\n')
    c = dkms.evaluate(conf, ctx(ksrc), cwd=build)
    assert c.make_command == ""
    build_dir = Path("/cache/dkms/foo/1.0/build")
    assert dkms.dkms_make_command(c, build_dir, ctx(ksrc), ["ARCH=x86", "CC=gcc-12"], 4) == \
        f"make -j4 KERNELRELEASE=6.1.0-50-amd64 ARCH=x86 CC=gcc-12 -C {ksrc} M={build_dir}"


def test_only_a_leading_make_gets_dkms_variables(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + 'MAKE[0]="./build.sh ${kernelver}"\n')
    c = dkms.evaluate(conf, ctx(ksrc), cwd=build)
    assert dkms.dkms_make_command(c, build, ctx(ksrc), ["ARCH=x86"], 2) == "./build.sh 6.1.0-50-amd64"


def test_the_environment_is_dkms_s_not_kharness_s(tmp_path, ksrc, monkeypatch):
    monkeypatch.setenv("KH_TEST_SECRET", "leaked")
    conf, build = conf_in(tmp_path, BASE.replace('"1.0"', '"${KH_TEST_SECRET:-clean}"')
                          + 'MAKE[0]="$kernelver|$arch|$kernel_source_dir|$dkms_tree|$source_tree|$module|$module_version"\n')
    c = dkms.evaluate(conf, ctx(ksrc, module="foo", module_version="1.0"), cwd=build)
    assert c.package_version == "clean"
    root = ksrc.parent.parent
    assert c.make_command == f"6.1.0-50-amd64|x86_64|{ksrc}|{root / 'dkms'}|{root / 'src'}|foo|1.0"


def test_command_substitutions_run_in_the_build_copy_only(tmp_path, ksrc):
    """DKMS sources the conf with bash, so $(...) runs: kharness lets it, in the copy."""
    user = tmp_path / "user_module"
    user.mkdir()
    (user / "dkms.conf").write_text(BASE + 'POST_BUILD="$(touch PWNED; pwd)"\n')
    build = tmp_path / "build_copy"
    build.mkdir()
    (build / "dkms.conf").write_text((user / "dkms.conf").read_text())
    c = dkms.evaluate(build / "dkms.conf", ctx(ksrc), cwd=build)
    assert c.get("POST_BUILD") == str(build)
    assert (build / "PWNED").exists()
    assert sorted(p.name for p in user.iterdir()) == ["dkms.conf"]


def test_a_conf_that_never_finishes_is_stopped(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + 'echo $$ > pid\nwhile :; do :; done\n')
    with pytest.raises(UsageError, match=r"did not finish within 1s"):
        dkms.evaluate(conf, ctx(ksrc), cwd=build, timeout=1)
    pid = int((build / "pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)   # killed and reaped, not left spinning


@pytest.mark.parametrize("text, message", [
    ('PACKAGE_NAME="foo"\n', "no PACKAGE_VERSION"),
    ('PACKAGE_VERSION="1"\n', "no PACKAGE_NAME"),
    (BASE + "exit 3\n", r"bash stopped while sourcing it \(exit 3\)"),
    (BASE + "exec true\n", "bash stopped while sourcing it"),
])
def test_confs_dkms_would_refuse(tmp_path, ksrc, text, message):
    conf, build = conf_in(tmp_path, text)
    with pytest.raises(UsageError, match=message):
        dkms.evaluate(conf, ctx(ksrc), cwd=build)


def test_a_syntax_error_keeps_what_was_set_before_it_as_bash_does(tmp_path, ksrc):
    conf, build = conf_in(tmp_path, BASE + 'MAKE[0]="make x"\nif then fi (\n')
    assert dkms.evaluate(conf, ctx(ksrc), cwd=build).make_command == "make x"


# --- BUILD_EXCLUSIVE_* -------------------------------------------------------------------------

def _excl(tmp_path, ksrc, lines: str, **kw) -> str | None:
    conf, build = conf_in(tmp_path, BASE + lines)
    c = ctx(ksrc, **kw)
    return dkms.exclusion(dkms.evaluate(conf, c, cwd=build), c)


FIXTURE_ARCH = 'BUILD_EXCLUSIVE_ARCH="^(x86_64|aarch64|arm.*|ppc64le)$"\n'


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "armv7l", "ppc64le"])
def test_build_exclusive_arch_lets_these_build(tmp_path, ksrc, arch):
    assert _excl(tmp_path, ksrc, FIXTURE_ARCH, arch=arch) is None


def test_build_exclusive_arch_excludes_big_endian_ppc64(tmp_path, ksrc):
    assert _excl(tmp_path, ksrc, FIXTURE_ARCH, arch="ppc64") == \
        "dkms.conf builds only for architecture '^(x86_64|aarch64|arm.*|ppc64le)$', not ppc64"


def test_build_exclusive_kernel(tmp_path, ksrc):
    assert _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL="^6\\."\n') is None
    assert "not 5.10.0-32-amd64" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL="^6\\."\n', kernelver="5.10.0-32-amd64")


def test_build_exclusive_kernel_min_and_max_compare_as_dkms_does(tmp_path, ksrc):
    assert _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL_MIN="5.15"\n') is None
    assert "from 6.2" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL_MIN="6.2"\n')
    # 6.1.0-50 > 6.1.0-9 once the numbers are padded, as DKMS's VER() pads them.
    assert "up to 6.1.0-9" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL_MAX="6.1.0-9"\n')
    assert _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_KERNEL_MAX="6.12"\n') is None


def test_build_exclusive_config(tmp_path, ksrc):
    assert _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_CONFIG="CONFIG_PCI CONFIG_USB !CONFIG_DRM"\n') is None
    assert "with CONFIG_DRM" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_CONFIG="CONFIG_DRM"\n')
    assert "without CONFIG_USB" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_CONFIG="!CONFIG_USB"\n')
    assert "with CONFIG_EMPTY" in _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_CONFIG="CONFIG_EMPTY"\n')


def test_build_exclusive_config_reads_auto_conf_first(tmp_path, ksrc):
    (ksrc / "include" / "config").mkdir(parents=True)
    (ksrc / "include" / "config" / "auto.conf").write_text("CONFIG_DRM=y\n")
    assert _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_CONFIG="CONFIG_DRM"\n') is None


def test_a_regex_bash_cannot_compile_is_an_error_not_a_silent_pass(tmp_path, ksrc):
    with pytest.raises(UsageError, match="BUILD_EXCLUSIVE_ARCH '\\(x86' is not a regular expression"):
        _excl(tmp_path, ksrc, 'BUILD_EXCLUSIVE_ARCH="(x86"\n')


@pytest.mark.parametrize("value", ["../../../../tmp/evil", "..", ".", "a/b", "/abs"])
def test_a_package_name_or_version_is_one_directory_name_never_a_path(value):
    # kharness removes and writes $dkms_tree/<name>/<version>/build itself: a value that is a
    # path would lead it out of the build's tree.
    from kharness.build.dkmsbuild import _dir_name

    name = _dir_name(value)
    assert "/" not in name and name not in (".", "..") and name


def test_an_ordinary_package_name_and_version_are_kept():
    from kharness.build.dkmsbuild import _dir_name

    assert (_dir_name("v4l2loopback"), _dir_name("0.12.7")) == ("v4l2loopback", "0.12.7")
