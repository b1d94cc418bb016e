"""Unit tests for [load] expect_errno and [module] skip in kharness.toml (kharness.modconfig)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness.errors import UsageError
from kharness.modconfig import apply_skip, load_config, resolve_expect_errno

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"


def _cfg(tmp_path: Path, text: str):
    (tmp_path / "kharness.toml").write_text(text)
    return load_config(tmp_path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as e:
        _cfg(tmp_path, text)
    assert "\n" not in e.value.message
    return e.value.message.split(": ", 1)[1]


def test_the_expected_fail_fixture():
    c = load_config(FIXTURES / "expected_fail")
    assert c.skip == ("silly",)
    assert c.expect_errno == {"kdatasize": "ENODEV", "kdataalign": "ENODEV"}
    loaded = apply_skip(c, ["jiq", "kdataalign", "kdatasize", "silly"])
    assert loaded == ["jiq", "kdataalign", "kdatasize"]
    assert resolve_expect_errno(c, loaded) == {"kdatasize": "ENODEV", "kdataalign": "ENODEV"}


def test_one_errno_for_the_one_module(tmp_path):
    c = _cfg(tmp_path, '[load]\nexpect_errno = "EINVAL"\n')
    assert c.expect_errno == {"": "EINVAL"}
    assert resolve_expect_errno(c, ["mymod"]) == {"mymod": "EINVAL"}


def test_one_errno_with_several_modules_must_say_which(tmp_path):
    c = _cfg(tmp_path, '[load]\nexpect_errno = "ENODEV"\n')
    with pytest.raises(UsageError, match=r"ENODEV for which module\? 2 are loaded \(a, b\)"):
        resolve_expect_errno(c, ["a", "b"])


def test_names_are_checked_against_the_modules_loaded(tmp_path):
    c = _cfg(tmp_path, '[module]\nskip = ["silly"]\n[load]\nexpect_errno = { silly = "ENODEV", ghost = "EIO" }\n')
    loaded = apply_skip(c, ["jiq", "silly"])
    with pytest.raises(UsageError, match="silly, ghost are not among the modules loaded \\(jiq\\)"):
        resolve_expect_errno(c, loaded)


def test_dashes_and_underscores_name_the_same_module(tmp_path):
    c = _cfg(tmp_path, '[module]\nskip = ["my-mod"]\n[load]\nexpect_errno = { other-mod = "ENODEV" }\n')
    assert c.skip == ("my_mod",) and c.expect_errno == {"other_mod": "ENODEV"}


def test_no_expect_errno_is_an_empty_table(tmp_path):
    c = _cfg(tmp_path, '[load]\nexpect_dmesg = "x"\n')
    assert c.expect_errno == {} and c.skip == ()
    assert resolve_expect_errno(c, ["a", "b"]) == {}


@pytest.mark.parametrize("text, message", [
    ('[load]\nexpect_errno = "ENOTANERRNO"\n', "[load] expect_errno: 'expect_errno' must be an errno name"),
    ('[load]\nexpect_errno = "enodev"\n', "'expect_errno' must be an errno name"),
    ('[load]\nexpect_errno = 19\n', "[load] expect_errno: must be an errno name such as \"ENODEV\""),
    ('[load]\nexpect_errno = {}\n', "[load] expect_errno: must be an errno name"),
    ('[load]\nexpect_errno = { a = 19 }\n', "[load] expect_errno.a: 'expect_errno' must be an errno name"),
    ('[load]\nexpect_errno = { "a b" = "EIO" }\n', "'a b' is not a module name"),
    ('[unload]\nexpect_errno = "EIO"\n', "[unload]: unknown key(s) ['expect_errno']; known: expect_dmesg"),
    ('[module]\nskip = "silly"\n', "[module] skip: must be a list of module names"),
    ('[module]\nskip = ["ok", "no/way"]\n', "[module] skip: 'no/way' is not a module name"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, text, message):
    assert message in _error(tmp_path, text)


def test_skip_names_must_be_built_and_leave_one(tmp_path):
    c = _cfg(tmp_path, '[module]\nskip = ["silly"]\n')
    with pytest.raises(UsageError, match="silly is not built here \\(built: a, b\\)"):
        apply_skip(c, ["a", "b"])
    with pytest.raises(UsageError, match="leaves no module to load"):
        apply_skip(c, ["silly"])


@pytest.mark.parametrize("rc, output, problem, expected", [
    (1, "insmod: can't insert 'kdatasize.ko': No such device\n", None, "ENODEV"),
    (1, "insmod: ERROR: could not insert module kdatasize.ko: No such device\n", None, "ENODEV"),
    (0, "", "insmod kdatasize succeeded; [load] expect_errno says it must fail with ENODEV", "ENODEV"),
    (1, "insmod: can't insert 'kdatasize.ko': Invalid argument\n",
     "insmod kdatasize failed with EINVAL, expected ENODEV (insmod: can't insert 'kdatasize.ko': Invalid argument)",
     "ENODEV"),
    (1, "insmod: can't insert 'kdatasize.ko': unknown symbol in module, or unknown parameter\n",
     "insmod kdatasize failed with ENOENT, expected ENODEV", "ENODEV"),
    (1, "insmod: can't insert 'kdatasize.ko': unknown symbol in module, or unknown parameter\n", None, "ENOENT"),
    (1, "insmod: can't insert 'kdatasize.ko': invalid module format\n", None, "ENOEXEC"),
    (1, "insmod: can't insert 'kdatasize.ko': Operation not supported\n", None, "EOPNOTSUPP"),
    (1, "insmod: can't insert 'kdatasize.ko': Resource temporarily unavailable\n", None, "EWOULDBLOCK"),
])
def test_judging_a_load_that_must_fail(rc, output, problem, expected):
    from kharness.modconfig import judge_load

    got = judge_load("kdatasize", expected, rc, output)
    if problem is None:
        assert got is None
    else:
        assert got is not None and got.startswith(problem)
