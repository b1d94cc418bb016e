"""Unit tests for kharness.plan: one place decides what a guest boots (target x kernel spec x
debug checkers x kernel tree), for `run`, `kernel build` and `image build` alike. No network: the
archive's answers are replaced where a plan would ask it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import plan as planmod
from kharness.elf import load_order
from kharness.errors import UsageError
from kharness.kernels.debug import ALL, DEBUG_MEMORY_MB
from kharness.plan import (DEBIAN_PACKAGE, DEBIAN_SOURCE, TREE, GuestPlan, build_source, insmod_order,
                           kernel_choice, plan_guest, resolve_any)
from kharness.targets import get_target


@pytest.mark.parametrize("kernel, debug, want", [
    ("6.1-debug", None, ("6.1", ALL)),          # the suffix: every checker
    ("6.1-debug", "kasan", ("6.1", ("kasan",))),  # --debug picks the set
    ("6.1", "ubsan,kasan", ("6.1", ("kasan", "ubsan"))),
    ("6.1", ("lockdep",), ("6.1", ("lockdep",))),
    (None, None, (None, ())),
    ("6.1.0-50-amd64", (), ("6.1.0-50-amd64", ())),
    ("stable-debug", None, ("stable-debug", ())),   # only "<series>-debug" is the debug suffix
])
def test_kernel_choice(kernel, debug, want):
    assert kernel_choice(kernel, debug) == want


def test_a_debug_guest_gets_more_memory_and_a_plain_one_does_not():
    x86 = get_target("x86_64")
    assert x86.memory_mb < DEBUG_MEMORY_MB
    plain = plan_guest("x86_64", "6.1")
    assert plain.profile == x86 and plain.debug == () and plain.kernel_from == DEBIAN_PACKAGE
    debug = plan_guest("x86_64", "6.1-debug", accel="tcg")
    assert debug.profile.memory_mb == DEBUG_MEMORY_MB and debug.debug == ALL and debug.accel == "tcg"
    assert debug.kernel == "6.1" and debug.kernel_from == DEBIAN_SOURCE and not debug.from_debian
    # A profile given (as the runner gives it) is planned the same way as its name.
    assert plan_guest(x86, "6.1", "kasan") == plan_guest("x86_64", "6.1", "kasan")


def test_where_the_kernel_comes_from(tmp_path):
    assert plan_guest("ppc64").kernel_from == DEBIAN_SOURCE          # Debian ships no kernel for it
    assert plan_guest("ppc64").from_debian is False
    assert plan_guest("arm64", kernel_tree=tmp_path).kernel_from == TREE
    p = plan_guest("x86_64", kernel_tree=tmp_path, kernel_config=[tmp_path / "a.config"])
    assert p.kernel_config == (tmp_path / "a.config",) and isinstance(p, GuestPlan)


def test_bad_debug_wishes_are_refused_before_any_work():
    with pytest.raises(UsageError) as e:
        plan_guest("ppc64", "6.1", "kasan")
    assert e.value.message == "kharness cannot build a debug kernel for ppc64"
    with pytest.raises(UsageError) as e:
        plan_guest("x86_64", None, "kasan,nonsense")
    assert e.value.message == "unknown debug checker(s) nonsense"
    with pytest.raises(UsageError):
        plan_guest("no-such-board")


@pytest.fixture
def archive(monkeypatch):
    """What the plan asks of the archive and the kernel builder, recorded."""
    calls = []

    def debian_source(profile, series, debug=()):
        calls.append(("debian_source", profile.name, series, debug))
        return SimpleNamespace(series=series)

    def user_tree(profile, tree, extra=(), debug=()):
        calls.append(("user_tree", profile.name, tree, extra, debug))
        return SimpleNamespace(tree=tree)

    def series_for(profile, wanted):
        calls.append(("series_for", profile.kernel_source, wanted))
        return {"stable": "6.1", "newest": "7.2"}[wanted], "bookworm"

    monkeypatch.setattr(planmod, "debian_source", debian_source)
    monkeypatch.setattr(planmod, "user_tree", user_tree)
    monkeypatch.setattr(planmod, "series_for", series_for)
    monkeypatch.setattr(planmod, "resolve_kernel", lambda profile, wanted: calls.append(("resolve_kernel", wanted)) or "spec")
    monkeypatch.setattr(planmod, "source_spec", lambda built, series: ("source spec", series))
    return calls


def test_a_source_build_resolves_an_alias_to_the_series_the_archive_offers(archive):
    ppc = get_target("ppc64")
    assert build_source(ppc, "stable")[0] == "6.1"
    assert archive == [("series_for", "debian", "stable"), ("debian_source", "ppc64", "6.1", ())]


def test_a_source_build_defaults_to_the_default_series(archive):
    assert build_source(get_target("ppc64"), None, debug=("kasan",))[0] == "6.1"
    assert archive == [("debian_source", "ppc64", "6.1", ("kasan",))]


def test_a_source_build_needs_a_series_and_kernel_config_needs_a_tree(archive, tmp_path):
    ppc = get_target("ppc64")
    with pytest.raises(UsageError) as e:
        build_source(ppc, "6.1.0-50-powerpc64")
    assert e.value.message == ("kharness builds this kernel from Debian's linux-source-<series>: give a "
                               "series such as 6.1, not '6.1.0-50-powerpc64'")
    with pytest.raises(UsageError) as e:
        build_source(ppc, "6.1", kernel_config=(tmp_path / "x.config",))
    assert e.value.message == "--kernel-config applies to --kernel-tree"
    assert archive == []


def test_a_tree_is_built_as_it_is(archive, tmp_path):
    series, built = build_source(get_target("arm64"), None, tmp_path, (tmp_path / "a.config",), ("ubsan",))
    assert series == "6.1" and built.tree == tmp_path
    assert archive == [("user_tree", "arm64", tmp_path, (tmp_path / "a.config",), ("ubsan",))]


def test_resolve_any_takes_debian_packages_unless_a_build_is_asked_for(archive, tmp_path):
    x86 = get_target("x86_64")
    assert resolve_any(x86, "6.12") == ("spec", None)
    assert archive == [("resolve_kernel", "6.12")]
    archive.clear()
    spec, built = plan_guest("x86_64", "6.1-debug").resolve()
    assert spec == ("source spec", "6.1") and built.series == "6.1"
    assert archive == [("debian_source", "x86_64", "6.1", ALL)]


# --- the order modules are loaded in -----------------------------------------------------------

def _mod(name, depends=""):
    return SimpleNamespace(name=name, modinfo={"depends": [depends]} if depends is not None else {})


def test_insmod_order_follows_depends_then_build_order():
    a, b, c = _mod("a", "c"), _mod("b", None), _mod("c", "b,builtin_thing")
    assert [m.name for m in insmod_order([a, b, c], SimpleNamespace(load_order=()))] == ["b", "c", "a"]


def test_insmod_order_takes_kharness_toml_load_order_and_refuses_unknown_names():
    a, b = _mod("a"), _mod("b")
    assert [m.name for m in insmod_order([a, b], SimpleNamespace(load_order=("b", "a")))] == ["b", "a"]
    with pytest.raises(UsageError) as e:
        insmod_order([a, b], SimpleNamespace(load_order=("a", "zz")))
    assert e.value.message == "load_order names ['zz'], which the build did not produce"


def test_load_order_survives_a_dependency_cycle_and_ignores_outsiders():
    assert load_order(["x", "y"], {"x": ["y"], "y": ["x"]}) == ["y", "x"]
    assert load_order(["m"], {"m": ["virtio", "m"]}) == ["m"]
    assert load_order(sorted(["b", "a"]), {"a": ["b"]}) == ["b", "a"]
