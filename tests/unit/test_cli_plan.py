"""`kharness kernel build` and `kharness image build` plan their guest where `kharness run` does
(kharness.plan): the same -debug rule, default series, aliases and debug-guest memory. The archive
and the builds are replaced by recorders (no network, no kernel build); the CLI is the real one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from kharness import cli
from kharness import plan as planmod
from kharness.kernels.debug import ALL, DEBUG_MEMORY_MB


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    calls = []
    built = SimpleNamespace(release="6.1.99-khdebug", out=tmp_path, boot="vmlinux", build_seconds=None)

    def debian_source(profile, series, debug=()):
        calls.append(("debian_source", profile.name, series, debug, profile.memory_mb))
        return built

    def series_for(profile, wanted):
        calls.append(("series_for", wanted))
        return "6.1", "bookworm"

    def guest_image(profile, spec, b):
        calls.append(("guest_image", profile.name, profile.memory_mb, spec))
        return SimpleNamespace(kernel=tmp_path / "vmlinuz"), SimpleNamespace(path=tmp_path / "base.img"), None

    monkeypatch.setattr(planmod, "debian_source", debian_source)
    monkeypatch.setattr(planmod, "series_for", series_for)
    monkeypatch.setattr(planmod, "source_spec", lambda b, series: SimpleNamespace(release=b.release, series=series))
    monkeypatch.setattr(planmod, "guest_image", guest_image)
    return calls


def _kharness(*argv):
    return CliRunner().invoke(cli.app, list(argv))


def test_kernel_build_takes_the_debug_suffix_and_the_default_series(recorded, tmp_path):
    r = _kharness("kernel", "build", "--target", "x86_64", "--kernel", "6.1-debug")
    assert r.exit_code == 0, r.output
    assert recorded == [("debian_source", "x86_64", "6.1", ALL, DEBUG_MEMORY_MB)]
    assert f"debug kernel ({', '.join(ALL)}) 6.1.99-khdebug for x86_64: {tmp_path / 'vmlinux'}" in r.output


def test_kernel_build_resolves_an_alias_as_run_does(recorded):
    r = _kharness("kernel", "build", "--target", "ppc64", "--kernel", "stable")
    assert r.exit_code == 0, r.output
    assert recorded == [("series_for", "stable"), ("debian_source", "ppc64", "6.1", (), 512)]


def test_image_build_gives_a_debug_guest_the_memory_run_gives_it(recorded):
    r = _kharness("image", "build", "--target", "x86_64", "--debug", "kasan")
    assert r.exit_code == 0, r.output
    assert recorded[-1][:3] == ("guest_image", "x86_64", DEBUG_MEMORY_MB)
    assert "release   6.1.99-khdebug" in r.output


def test_kernel_build_usage_errors_are_unchanged(recorded):
    r = _kharness("kernel", "build", "--target", "x86_64")
    assert r.exit_code == 2 and "target x86_64 uses Debian's packaged kernels" in r.output
    r = _kharness("kernel", "build", "--target", "ppc64", "--config", str(Path("x.config")))
    assert r.exit_code == 2 and "--config applies to --source" in r.output
    r = _kharness("kernel", "build", "--target", "ppc64", "--debug", "kasan")
    assert r.exit_code == 2 and "kharness cannot build a debug kernel for ppc64" in r.output
    assert recorded == []
