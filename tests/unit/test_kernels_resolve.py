"""Unit tests for kharness.kernels.resolve with fake package indices (no mirror, no cache)."""

from __future__ import annotations

import dataclasses

import pytest

from kharness.errors import UsageError
from kharness.kernels import resolve
from kharness.debian.index import PackageIndex, Pkg
from kharness.kernels.resolve import available, resolve_kernel, series_of
from kharness.debian.suites import Suite
from kharness.targets import get_target


def _pkg(name: str, version: str, arch: str = "amd64", depends: str = "", suite: str = "bookworm") -> Pkg:
    return Pkg(name=name, version=version, arch=arch,
               filename=f"pool/main/l/linux/{name}_{version}_{arch}.deb",
               size=1000 + len(name), sha256=(name + version + arch).encode().hex()[:64].ljust(64, "0"),
               depends=depends, suite=suite)


def _hdr_deps(abi: str, version: str, kbuild: str, compiler: str) -> str:
    return (f"linux-headers-{abi}-common (= {version}), {kbuild} (>= {version}), "
            f"{compiler}, libc6 (>= 2.34)")


def _bookworm_amd64() -> list[Pkg]:
    s = "bookworm"
    return [
        # the release kharness must choose for 6.1
        _pkg("linux-image-6.1.0-50-amd64", "6.1.170-1", suite=s),
        _pkg("linux-headers-6.1.0-50-amd64", "6.1.170-1", suite=s,
             depends=_hdr_deps("6.1.0-50", "6.1.170-1", "linux-kbuild-6.1",
                               "linux-compiler-gcc-12-x86 (>= 12.2.0-14)")),
        _pkg("linux-headers-6.1.0-50-common", "6.1.170-1", arch="all", suite=s),
        # older release: "9" sorts after "50" as a string, but it is older
        _pkg("linux-image-6.1.0-9-amd64", "6.1.27-1", suite=s),
        _pkg("linux-headers-6.1.0-9-amd64", "6.1.27-1", suite=s,
             depends=_hdr_deps("6.1.0-9", "6.1.27-1", "linux-kbuild-6.1",
                               "linux-compiler-gcc-12-x86 (>= 12.2.0-14)")),
        _pkg("linux-headers-6.1.0-9-common", "6.1.27-1", arch="all", suite=s),
        # newest, but without headers: never chosen
        _pkg("linux-image-6.1.0-51-amd64", "6.1.176-1", suite=s),
        # other flavours, newer still: never chosen for the amd64 flavour
        _pkg("linux-image-6.1.0-52-rt-amd64", "6.1.180-1", suite=s),
        _pkg("linux-headers-6.1.0-52-rt-amd64", "6.1.180-1", suite=s,
             depends=_hdr_deps("6.1.0-52", "6.1.180-1", "linux-kbuild-6.1", "gcc-12")),
        _pkg("linux-image-6.1.0-52-cloud-amd64", "6.1.180-1", suite=s),
        _pkg("linux-headers-6.1.0-52-cloud-amd64", "6.1.180-1", suite=s,
             depends=_hdr_deps("6.1.0-52", "6.1.180-1", "linux-kbuild-6.1", "gcc-12")),
        _pkg("linux-image-6.1.0-50-amd64-unsigned", "6.1.170-1", suite=s),
        _pkg("linux-headers-6.1.0-50-amd64-unsigned", "6.1.170-1", suite=s),
        _pkg("linux-image-amd64", "6.1.170-1", suite=s),
        _pkg("linux-headers-amd64", "6.1.170-1", suite=s),
        # two versions of the kbuild package: the newest wins
        _pkg("linux-kbuild-6.1", "6.1.99-1", suite=s),
        _pkg("linux-kbuild-6.1", "6.1.170-1", suite=s),
    ]


def _backports_amd64() -> list[Pkg]:
    s = "bookworm-backports"
    v = "6.12.95-1~bpo12+1"
    return [
        _pkg("linux-image-6.12.95+deb12-amd64", v, suite=s),
        _pkg("linux-headers-6.12.95+deb12-amd64", v, suite=s,
             depends=_hdr_deps("6.12.95+deb12", v, "linux-kbuild-6.12.95+deb12", "gcc-12")),
        _pkg("linux-headers-6.12.95+deb12-common", v, arch="all", suite=s),
        _pkg("linux-kbuild-6.12.95+deb12", v, suite=s),
    ]


def _trixie_amd64() -> list[Pkg]:
    s = "trixie"
    v = "6.12.99-1"
    return [
        _pkg("linux-image-6.12.99+deb13-amd64", v, suite=s),
        _pkg("linux-headers-6.12.99+deb13-amd64", v, suite=s,
             depends=_hdr_deps("6.12.99+deb13", v, "linux-kbuild-6.12.99+deb13", "gcc-14")),
        _pkg("linux-headers-6.12.99+deb13-common", v, arch="all", suite=s),
        _pkg("linux-kbuild-6.12.99+deb13", v, suite=s),
    ]


def _sid_amd64() -> list[Pkg]:
    s = "sid"
    v = "7.2.13-1"
    abi = "7.2.13+deb14"
    return [
        _pkg(f"linux-image-{abi}-amd64", v, suite=s,
             depends=f"linux-binary-{abi}-amd64 (= {v}), linux-modules-{abi}-amd64 (= {v}), "
                     "kmod, linux-base (>= 4.12~), initramfs-tools | linux-initramfs-tool"),
        _pkg(f"linux-binary-{abi}-amd64", v, suite=s),
        _pkg(f"linux-modules-{abi}-amd64", v, suite=s),
        _pkg(f"linux-headers-{abi}-amd64", v, suite=s,
             depends=_hdr_deps(abi, v, f"linux-kbuild-{abi}", "gcc-16-for-host (>= 16.1)")),
        _pkg(f"linux-headers-{abi}-common", v, arch="all", suite=s),
        _pkg(f"linux-kbuild-{abi}", v, suite=s),
    ]


def _bookworm_arm64() -> list[Pkg]:
    s = "bookworm"
    return [
        _pkg("linux-image-6.1.0-50-arm64", "6.1.170-1", arch="arm64", suite=s),
        _pkg("linux-headers-6.1.0-50-arm64", "6.1.170-1", arch="arm64", suite=s,
             depends="linux-headers-6.1.0-50-common (= 6.1.170-1), linux-kbuild-6.1 (>= 6.1.170-1), "
                     "linux-compiler-gcc-12-arm (>= 12.2.0-14)"),
        _pkg("linux-headers-6.1.0-50-common", "6.1.170-1", arch="all", suite=s),
        # the arm64 build of kbuild: not runnable on the amd64 host, must not be used
        _pkg("linux-kbuild-6.1", "6.1.170-1", arch="arm64", suite=s),
    ]


def _trixie_backports_amd64() -> list[Pkg]:
    """7.3, and a 7.2 for the rt flavour only (as the archive had it): stable-backports offers 7.3."""
    s = "trixie-backports"
    v, abi = "7.3.4-1~bpo13+1", "7.3.4+deb13"
    return [
        _pkg(f"linux-image-{abi}-amd64", v, suite=s, depends=f"linux-binary-{abi}-amd64 (= {v})"),
        _pkg(f"linux-binary-{abi}-amd64", v, suite=s),
        _pkg(f"linux-headers-{abi}-amd64", v, suite=s,
             depends=_hdr_deps(abi, v, f"linux-kbuild-{abi}", "gcc-14-for-host")),
        _pkg(f"linux-headers-{abi}-common", v, arch="all", suite=s),
        _pkg(f"linux-kbuild-{abi}", v, suite=s),
        _pkg("linux-image-7.2.9+deb13-rt-amd64", "7.2.9-1~bpo13+1", suite=s),
        _pkg("linux-headers-7.2.9+deb13-rt-amd64", "7.2.9-1~bpo13+1", suite=s),
    ]


def _forky_amd64() -> list[Pkg]:
    s = "forky"
    v, abi = "7.2.12-1", "7.2.12+deb14"
    return [
        _pkg(f"linux-image-{abi}-amd64", v, suite=s, depends=f"linux-binary-{abi}-amd64 (= {v})"),
        _pkg(f"linux-binary-{abi}-amd64", v, suite=s),
        _pkg(f"linux-headers-{abi}-amd64", v, suite=s,
             depends=_hdr_deps(abi, v, f"linux-kbuild-{abi}", "gcc-16-for-host")),
        _pkg(f"linux-headers-{abi}-common", v, arch="all", suite=s),
        _pkg(f"linux-kbuild-{abi}", v, suite=s),
    ]


@pytest.fixture
def x86():
    return get_target("x86_64")


@pytest.fixture
def indices(monkeypatch, tmp_path):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path))
    table = {
        ("bookworm", "amd64"): _bookworm_amd64(),
        ("bookworm-backports", "amd64"): _backports_amd64(),
        ("trixie", "amd64"): _trixie_amd64(),
        ("sid", "amd64"): _sid_amd64(),
        ("trixie-backports", "amd64"): _trixie_backports_amd64(),
        ("forky", "amd64"): _forky_amd64(),
        ("bookworm", "arm64"): _bookworm_arm64(),
    }
    calls: list[tuple[str, str]] = []

    def fake_load_index(suite, arch, *, refresh=False):
        calls.append((suite, arch))
        return PackageIndex(suite, arch, list(table.get((suite, arch), [])))

    monkeypatch.setattr(resolve, "load_index", fake_load_index)
    monkeypatch.setattr(resolve, "_suites", lambda: list(SUITES))
    monkeypatch.setattr(resolve, "_host_gcc_major", lambda prefix: 12)   # a bookworm host
    return table, calls


# The mirror as debian/suites.py reads it when this was written (codename, the archive's alias for it).
SUITES = [Suite("bullseye", "oldoldstable"), Suite("bookworm", "oldstable"),
          Suite("bookworm-backports", "oldstable-backports"), Suite("trixie", "stable"),
          Suite("trixie-backports", "stable-backports"), Suite("forky", "testing"), Suite("sid", "unstable")]


def _names(pkgs) -> list[str]:
    return [p.name for p in pkgs]


@pytest.mark.parametrize("release,series", [
    ("6.1.0-50-amd64", "6.1"),
    ("6.12.95+deb12-amd64", "6.12"),
    ("7.2.13+deb14-amd64", "7.2"),
    ("5.10.0-30-armmp", "5.10"),
    ("6.1", "6.1"),
    ("amd64", ""),
    ("", ""),
])
def test_series_of(release, series):
    assert series_of(release) == series


def test_available_61_newest_first_amd64_flavour_only(x86, indices):
    assert available(x86, "6.1") == [("bookworm", "6.1.0-50-amd64"), ("bookworm", "6.1.0-9-amd64")]


def test_available_612_preferred_suite_first(x86, indices):
    assert available(x86, "6.12") == [("bookworm-backports", "6.12.95+deb12-amd64"),
                                      ("trixie", "6.12.99+deb13-amd64")]


def test_available_unknown_series_is_empty(x86, indices):
    assert available(x86, "4.19") == []


def test_a_named_series_reads_only_where_it_was_last_seen(x86, indices):
    _, calls = indices
    available(x86, "6.1")
    assert set(calls) == {("bookworm", "amd64")}


def test_resolve_series_61(x86, indices):
    spec = resolve_kernel(x86, "6.1")
    assert spec.release == "6.1.0-50-amd64"
    assert spec.series == "6.1"
    assert spec.suite == "bookworm"
    assert spec.version == "6.1.170-1"
    assert _names(spec.image_pkgs) == ["linux-image-6.1.0-50-amd64"]
    assert _names(spec.header_pkgs) == ["linux-headers-6.1.0-50-amd64", "linux-headers-6.1.0-50-common",
                                        "linux-kbuild-6.1"]
    assert spec.header_pkgs[2].version == "6.1.170-1"
    assert spec.gcc == "gcc-12"
    assert _names(spec.packages) == _names(spec.image_pkgs) + _names(spec.header_pkgs)


def test_resolve_default_is_61(x86, indices):
    assert resolve_kernel(x86, None).release == "6.1.0-50-amd64"
    assert resolve_kernel(x86, "").release == "6.1.0-50-amd64"
    assert resolve_kernel(x86, " 6.1\n").release == "6.1.0-50-amd64"


@pytest.mark.parametrize("flavour", ["rt-amd64", "cloud-amd64"])
def test_other_flavours_never_picked_even_when_newer(x86, indices, flavour):
    table, _ = indices
    # Only the other flavour left: 6.1 has nothing for the amd64 flavour.
    table[("bookworm", "amd64")] = [p for p in table[("bookworm", "amd64")]
                                    if flavour in p.name or "kbuild" in p.name]
    assert available(x86, "6.1") == []
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1")
    assert str(ei.value) == ("series 6.1 is not in the archive any more; it offers: 6.12, 7.2, 7.3 "
                             "(kharness kernels)")


def test_resolve_612_prefers_backports(x86, indices):
    spec = resolve_kernel(x86, "6.12")
    assert spec.release == "6.12.95+deb12-amd64"
    assert spec.suite == "bookworm-backports"
    assert spec.version == "6.12.95-1~bpo12+1"
    assert _names(spec.header_pkgs) == ["linux-headers-6.12.95+deb12-amd64",
                                        "linux-headers-6.12.95+deb12-common",
                                        "linux-kbuild-6.12.95+deb12"]
    assert spec.gcc == "gcc-12"


def test_resolve_exact_release_in_second_suite(x86, indices):
    spec = resolve_kernel(x86, "6.12.99+deb13-amd64")
    assert spec.suite == "trixie"
    assert spec.gcc == "gcc-14"


def test_resolve_exact_older_release(x86, indices):
    spec = resolve_kernel(x86, "6.1.0-9-amd64")
    assert spec.release == "6.1.0-9-amd64"
    assert spec.version == "6.1.27-1"
    assert _names(spec.header_pkgs) == ["linux-headers-6.1.0-9-amd64", "linux-headers-6.1.0-9-common",
                                        "linux-kbuild-6.1"]


def test_resolve_unknown_release_lists_what_exists(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1.0-77-amd64")
    e = ei.value
    assert e.message == "kernel 6.1.0-77-amd64 is not in Debian's archive for x86_64"
    assert e.hint == "available 6.1 releases: 6.1.0-50-amd64, 6.1.0-9-amd64"
    assert str(e) == ("kernel 6.1.0-77-amd64 is not in Debian's archive for x86_64 "
                      "(available 6.1 releases: 6.1.0-50-amd64, 6.1.0-9-amd64)")


def test_resolve_release_without_headers_is_unknown(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1.0-51-amd64")
    assert ei.value.hint == "available 6.1 releases: 6.1.0-50-amd64, 6.1.0-9-amd64"


def test_resolve_rt_release_is_refused(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1.0-52-rt-amd64")
    assert "6.1.0-52-rt-amd64" not in ei.value.hint


def test_resolve_unknown_release_with_nothing_available(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "5.10.0-30-amd64")
    assert ei.value.hint == "available 5.10 releases: none"


def test_resolve_wrong_flavour(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1.0-50-arm64")
    assert ei.value.message == "kernel '6.1.0-50-arm64' is not a amd64 kernel (target x86_64)"
    assert ei.value.hint == "releases for this target end in -amd64"


def test_series_not_in_the_archive(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "5.4")
    # not "any more": 5.4 is no series kharness ever named
    assert str(ei.value) == "series 5.4 is not in the archive; it offers: 6.1, 6.12, 7.2, 7.3 (kharness kernels)"


def test_the_archive_not_the_profile_decides_what_exists(x86, indices, capsys):
    only61 = dataclasses.replace(x86, series=("6.1",))
    assert resolve_kernel(only61, "6.12").release == "6.12.95+deb12-amd64"
    assert resolve_kernel(only61, "6.12.95+deb12-amd64").suite == "bookworm-backports"
    assert "6.12 is not among the series kharness is tested with on x86_64 (6.1)" in capsys.readouterr().err


def test_unknown_series_in_release(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "9.9.0-1-amd64")
    assert str(ei.value) == "kernel 9.9.0-1-amd64 is not in Debian's archive for x86_64 (available 9.9 releases: none)"


def test_split_image_72(x86, indices):
    spec = resolve_kernel(x86, "7.2")
    abi = "7.2.13+deb14"
    assert spec.release == f"{abi}-amd64"
    assert spec.suite == "sid"
    assert _names(spec.image_pkgs) == [f"linux-image-{abi}-amd64", f"linux-binary-{abi}-amd64",
                                       f"linux-modules-{abi}-amd64"]
    assert _names(spec.header_pkgs) == [f"linux-headers-{abi}-amd64", f"linux-headers-{abi}-common",
                                        f"linux-kbuild-{abi}"]
    assert spec.gcc == "gcc-16"


def test_to_dict(x86, indices):
    d = resolve_kernel(x86, "6.1").to_dict()
    assert d["release"] == "6.1.0-50-amd64"
    assert d["series"] == "6.1"
    assert d["suite"] == "bookworm"
    assert d["version"] == "6.1.170-1"
    assert d["gcc"] == "gcc-12"
    assert [p["name"] for p in d["packages"]] == ["linux-image-6.1.0-50-amd64", "linux-headers-6.1.0-50-amd64",
                                                 "linux-headers-6.1.0-50-common", "linux-kbuild-6.1"]
    assert set(d["packages"][0]) == {"name", "version", "arch", "suite", "sha256", "size", "filename"}


@pytest.mark.parametrize("compiler,gcc", [
    ("gcc-12", "gcc-12"),
    ("gcc-12 (>= 12.2.0-14)", "gcc-12"),
    ("linux-compiler-gcc-10-x86", "gcc-10"),
    ("linux-compiler-gcc-10-x86 (>= 10.2.1-6) | gcc-11", "gcc-10"),
    ("gcc-16-for-host (>= 16.1)", "gcc-16"),
    ("gcc-13:amd64", "gcc-13"),
    ("make", None),
])
def test_gcc_from_header_depends(x86, indices, compiler, gcc):
    table, _ = indices
    table[("bookworm", "amd64")] = [
        p if p.name != "linux-headers-6.1.0-50-amd64"
        else dataclasses.replace(p, depends=_hdr_deps("6.1.0-50", "6.1.170-1", "linux-kbuild-6.1", compiler))
        for p in table[("bookworm", "amd64")]
    ]
    assert resolve_kernel(x86, "6.1.0-50-amd64").gcc == gcc


def test_kbuild_comes_from_the_host_arch_index(x86, indices):
    _, calls = indices
    arm = dataclasses.replace(x86, name="fake-arm64", debian_arch="arm64", kernel_flavour="arm64",
                              series=("6.1",))
    spec = resolve_kernel(arm, "6.1")
    assert spec.release == "6.1.0-50-arm64"
    assert [(p.name, p.arch) for p in spec.header_pkgs] == [
        ("linux-headers-6.1.0-50-arm64", "arm64"),
        ("linux-headers-6.1.0-50-common", "all"),
        ("linux-kbuild-6.1", "amd64"),
    ]
    assert spec.gcc == "gcc-12"
    assert ("bookworm", "amd64") in calls


def test_on_an_arm64_host_kbuild_comes_from_the_arm64_index(x86, indices, monkeypatch):
    from kharness import hostarch

    _, calls = indices
    monkeypatch.setattr(hostarch, "machine", lambda: "aarch64")
    spec = resolve_kernel(x86, "6.1")    # an amd64 kernel, built for on an arm64 host
    assert [(p.name, p.arch) for p in spec.header_pkgs] == [
        ("linux-headers-6.1.0-50-amd64", "amd64"),
        ("linux-headers-6.1.0-50-common", "all"),
        ("linux-kbuild-6.1", "arm64"),
    ]
    calls.clear()
    arm = dataclasses.replace(x86, name="fake-arm64", debian_arch="arm64", kernel_flavour="arm64", series=("6.1",))
    assert ("linux-kbuild-6.1", "arm64") in [(p.name, p.arch) for p in resolve_kernel(arm, "6.1").header_pkgs]
    assert ("bookworm", "amd64") not in calls   # native: the target's own index has kbuild


def test_missing_kbuild_in_host_index(x86, indices):
    table, _ = indices
    table[("bookworm", "amd64")] = [p for p in table[("bookworm", "amd64")] if "kbuild" not in p.name]
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "6.1")
    assert ei.value.message == "linux-kbuild-6.1 is not in the bookworm amd64 index"


def test_missing_common_headers_are_tolerated(x86, indices):
    table, _ = indices
    table[("bookworm", "amd64")] = [p for p in table[("bookworm", "amd64")] if not p.name.endswith("-common")]
    spec = resolve_kernel(x86, "6.1")
    assert _names(spec.header_pkgs) == ["linux-headers-6.1.0-50-amd64", "linux-kbuild-6.1"]


# --- the archive moves ------------------------------------------------------------------------

def _moved(table, suite: str, pkgs: list[Pkg]) -> None:
    table[(suite, "amd64")] = [dataclasses.replace(p, suite=suite) for p in pkgs]


def test_sid_moves_past_72_then_72_comes_from_where_it_still_is(x86, indices):
    table, _ = indices
    _moved(table, "sid", _trixie_backports_amd64())          # sid now offers 7.3
    spec = resolve_kernel(x86, "7.2")
    assert (spec.suite, spec.release) == ("forky", "7.2.12+deb14-amd64")


def test_a_named_series_gone_from_every_suite_is_one_line(x86, indices):
    table, _ = indices
    _moved(table, "sid", _trixie_backports_amd64())
    del table[("forky", "amd64")]
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "7.2")
    assert str(ei.value) == "series 7.2 is not in the archive any more; it offers: 6.1, 6.12, 7.3 (kharness kernels)"
    assert "\n" not in str(ei.value)


def test_bullseye_leaves_the_mirror(x86, indices, monkeypatch):
    monkeypatch.setattr(resolve, "_suites", lambda: [s for s in SUITES if s.name != "bullseye"])
    with pytest.raises(UsageError, match=r"^series 5.10 is not in the archive any more; it offers: 6.1, "):
        resolve_kernel(x86, "5.10")


@pytest.mark.parametrize("alias,suite,release", [
    ("stable", "trixie", "6.12.99+deb13-amd64"),
    ("oldstable", "bookworm", "6.1.0-50-amd64"),
    ("testing", "forky", "7.2.12+deb14-amd64"),
    ("unstable", "sid", "7.2.13+deb14-amd64"),
    ("backports", "trixie-backports", "7.3.4+deb13-amd64"),     # the *stable* release's backports
    ("oldstable-backports", "bookworm-backports", "6.12.95+deb12-amd64"),
    ("trixie", "trixie", "6.12.99+deb13-amd64"),                 # a codename pins its suite too
])
def test_an_alias_pins_the_suite_and_takes_its_newest_series(x86, indices, alias, suite, release):
    spec = resolve_kernel(x86, alias)
    assert (spec.suite, spec.release) == (suite, release)


def test_newest_is_the_highest_series_any_suite_offers(x86, indices):
    assert resolve_kernel(x86, "newest").series == "7.3"
    table, _ = indices
    del table[("trixie-backports", "amd64")]
    assert resolve_kernel(x86, "newest").release == "7.2.13+deb14-amd64"


def test_stable_follows_the_mirror_not_a_codename(x86, indices, monkeypatch):
    # The day forky is released: the mirror's Release files say so, and "stable" follows.
    moved = [Suite("bookworm", "oldoldstable"), Suite("trixie", "oldstable"), Suite("forky", "stable"),
             Suite("sid", "unstable")]
    monkeypatch.setattr(resolve, "_suites", lambda: moved)
    assert resolve_kernel(x86, "stable").suite == "forky"
    assert resolve_kernel(x86, "oldstable").suite == "trixie"


def test_unknown_alias(x86, indices):
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "bookwurm")
    assert ei.value.message == "unknown kernel 'bookwurm' for target x86_64"
    assert "stable" in ei.value.hint and "kharness kernels" in ei.value.hint


def test_the_default_is_61_while_it_exists_then_stable(x86, indices):
    table, _ = indices
    assert resolve_kernel(x86, None).series == "6.1"
    del table[("bookworm", "amd64")]
    spec = resolve_kernel(x86, None)
    assert (spec.suite, spec.series) == ("trixie", "6.12")


def test_the_host_compiler_not_the_number_ranks_suites(x86, indices):
    table, _ = indices
    # Swap the compilers: now trixie's 6.12 is the one the gcc-12 host builds without a build env.
    table[("bookworm-backports", "amd64")] = [
        dataclasses.replace(p, depends=p.depends.replace("gcc-12", "gcc-14")) for p in table[("bookworm-backports", "amd64")]]
    table[("trixie", "amd64")] = [
        dataclasses.replace(p, depends=p.depends.replace("gcc-14", "gcc-12")) for p in table[("trixie", "amd64")]]
    assert resolve_kernel(x86, "6.12").suite == "trixie"


def test_with_a_newer_host_compiler_both_build_and_the_older_suite_wins(x86, indices, monkeypatch):
    monkeypatch.setattr(resolve, "_host_gcc_major", lambda prefix: 14)
    assert [s for s, _ in available(x86, "6.12")] == ["bookworm-backports", "trixie"]


def test_archive_series_and_offered(x86, indices):
    assert resolve.archive_series(x86) == ["6.1", "6.12", "7.2", "7.3"]
    by = resolve.offered(x86)
    assert by["trixie-backports"] == {"7.3": ["7.3.4+deb13-amd64"]}    # not the rt-only 7.2
    assert by["bullseye"] == {}


def test_a_refused_index_is_the_error_when_nothing_else_offers_the_series(x86, indices, monkeypatch):
    from kharness.errors import InfraError

    def refuse(suite, arch, *, refresh=False):
        raise InfraError(f"could not read the {suite} {arch} package index: ...: refusing it")

    monkeypatch.setattr(resolve, "load_index", refuse)
    with pytest.raises(InfraError, match="bookworm amd64 .*refusing it"):
        resolve_kernel(x86, "6.1")


def test_a_suite_without_the_architecture_is_not_read(x86, indices, monkeypatch):
    # bullseye's Release lists no ppc64el: asking ppc64le for 5.10 is "not in the archive", not a
    # refusal of an index that was never there.
    table, calls = indices
    monkeypatch.setattr(resolve, "_suites", lambda: [
        Suite("bullseye", "oldoldstable", ("all", "arm64", "armhf", "i386")), *SUITES[1:]])
    with pytest.raises(UsageError) as ei:
        resolve_kernel(x86, "5.10")
    assert str(ei.value).startswith("series 5.10 is not in the archive any more; it offers: 6.1, ")
    assert ("bullseye", "amd64") not in calls
