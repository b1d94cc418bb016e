"""Turn ``--kernel 6.1``, ``--kernel stable`` or ``--kernel 6.1.0-50-amd64`` into exact Debian packages.

Which series exist is read from the signed indices of the suites the mirror has (debian/suites.py), never
fixed here. Among the suites that offer a series, one whose kernel the host's compiler can build is
preferred, then the older suite; within a suite the newest release for which both the image and the
headers are in the index wins. An alias (``stable``, ``testing``, ``backports``, a codename) pins
the suite and means its newest series; ``newest`` is the highest series any suite offers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from debian.debian_support import Version

from kharness import hostarch, ui
from kharness.debian.index import PackageIndex, Pkg, dep_names, load_index
from kharness.debian.suites import LAST_KNOWN, Suite, alias_names, archive_suites
from kharness.errors import InfraError, UsageError
from kharness.hostcc import cc_major
from kharness.targets import TargetProfile

# Where the named series were last seen (a hint, see debian/suites.py); kept under its old name for callers.
SERIES_SUITES = LAST_KNOWN
DEFAULT_SERIES = "6.1"     # while the archive offers it; after that, the stable suite's series

_SERIES_RE = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class KernelSpec:
    """Everything needed to fetch one exact kernel for one target."""

    release: str                  # uname -r, e.g. 6.1.0-50-amd64
    series: str
    suite: str
    version: str                  # Debian package version
    image_pkgs: tuple[Pkg, ...]   # linux-image (and linux-binary/-modules where split, 7.2)
    header_pkgs: tuple[Pkg, ...]  # arch headers, -common headers, host linux-kbuild
    gcc: str | None               # the compiler the headers ask for, e.g. "gcc-12"

    @property
    def packages(self) -> tuple[Pkg, ...]:
        return self.image_pkgs + self.header_pkgs

    def to_dict(self) -> dict:
        return {"release": self.release, "series": self.series, "suite": self.suite,
                "version": self.version, "gcc": self.gcc,
                "packages": [p.to_dict() for p in self.packages]}


def series_of(release: str) -> str:
    m = re.match(r"^(\d+)\.(\d+)", release)
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def _series_key(series: str) -> tuple[int, ...]:
    return tuple(int(x) for x in series.split("."))


def _offered(index: PackageIndex, flavour: str) -> dict[str, list[str]]:
    """``series -> releases`` with both image and headers in this index, newest first."""
    # 6.1.0-50-amd64, 6.12.95+deb12-amd64, 7.2.13+deb14-amd64; never 6.1.0-50-rt-amd64.
    pat = re.compile(rf"^linux-image-((\d+\.\d+)\.\d+(?:-\d+)?(?:\+deb\d+)?-{re.escape(flavour)})$")
    found: dict[str, list[tuple[Version, str]]] = {}
    for name in index.names():
        m = pat.match(name)
        if m and index.get(f"linux-headers-{m.group(1)}"):
            found.setdefault(m.group(2), []).append((Version(index.get(name).version), m.group(1)))
    return {series: [rel for _, rel in sorted(pairs, reverse=True)] for series, pairs in found.items()}


def _releases(index: PackageIndex, flavour: str, series: str) -> list[str]:
    """Releases of ``series`` with both image and headers in this index, newest first."""
    return _offered(index, flavour).get(series, [])


def _spec(profile: TargetProfile, index: PackageIndex, release: str) -> KernelSpec:
    image = index.get(f"linux-image-{release}")
    headers = index.get(f"linux-headers-{release}")
    assert image and headers
    image_pkgs = [image]
    # From 7.2, linux-image-* is an empty metapackage: the kernel is in linux-binary-*, the
    # modules in linux-modules-*, device trees and modules.builtin in linux-base-<release>.
    for dep in dep_names(image.depends):
        if dep.startswith(("linux-binary-", "linux-modules-", f"linux-base-{release}")) and index.get(dep):
            image_pkgs.append(index.get(dep))
    header_pkgs = [headers]
    # linux-kbuild-* holds host executables (fixdep, modpost): always the host's own build.
    host_arch = hostarch.debian_arch()
    host = load_index(index.suite, host_arch) if profile.debian_arch != host_arch else index
    gcc = None
    for dep in dep_names(headers.depends):
        if dep.startswith("linux-headers-") and dep.endswith("-common"):
            common = index.get(dep)
            if common:
                header_pkgs.append(common)
        elif dep.startswith("linux-kbuild-"):
            kb = host.get(dep)
            if kb is None:
                raise UsageError(f"{dep} is not in the {index.suite} {host_arch} index")
            header_pkgs.append(kb)
        m = re.match(r"^(?:linux-compiler-)?(gcc-\d+)", dep)
        if m and gcc is None:
            gcc = m.group(1)
    return KernelSpec(release=release, series=series_of(release), suite=index.suite,
                      version=image.version, image_pkgs=tuple(image_pkgs),
                      header_pkgs=tuple(header_pkgs), gcc=gcc)


def _gcc_of(headers: Pkg) -> str | None:
    for dep in dep_names(headers.depends):
        m = re.match(r"^(?:linux-compiler-)?(gcc-\d+)", dep)
        if m:
            return m.group(1)
    return None


def _host_gcc_major(prefix: str) -> int | None:
    import shutil
    return cc_major(f"{prefix}gcc") if shutil.which(f"{prefix}gcc") else None


def host_builds(profile: TargetProfile, gcc: str | None) -> bool:
    """Whether the host's compiler builds modules for a kernel built with ``gcc`` (the rule of
    build/toolchain.py): 5.10's gcc-10 on a gcc-12 host, yes; trixie's gcc-14 there, no (that
    needs a build environment of the kernel's suite: slower the first time)."""
    if gcc is None:
        return True
    import shutil
    have = _host_gcc_major(profile.cross_compile)
    return (have is not None and have >= int(gcc.split("-")[1])) or bool(shutil.which(profile.cross_compile + gcc))


def _suites() -> list[Suite]:
    return archive_suites()


def _scan(profile: TargetProfile, suites: list[Suite], refused: list[InfraError]) -> dict[str, dict[str, list[str]]]:
    """``suite name -> series -> releases`` for the suites whose index verifies."""
    out: dict[str, dict[str, list[str]]] = {}
    for suite in suites:
        if not suite.has_arch(profile.debian_arch):
            continue   # (its Release lists no index for this architecture: nothing to refuse)
        try:
            index = load_index(suite.name, profile.debian_arch)
        except InfraError as e:
            # A suite whose index does not verify is never used. Another suite that ships the
            # series and does verify may be (said out loud); with none, the refusal stands.
            refused.append(e)
            ui.info(f"[yellow]not using {suite.name}/{profile.debian_arch}: {e}[/yellow]")
            continue
        out[suite.name] = _offered(index, profile.kernel_flavour)
    return out


def offered(profile: TargetProfile) -> dict[str, dict[str, list[str]]]:
    """What every suite of the mirror offers this target: ``suite -> series -> releases``."""
    refused: list[InfraError] = []
    out = _scan(profile, _suites(), refused)
    if not any(out.values()) and refused:
        raise refused[0]
    return out


def archive_series(profile: TargetProfile) -> list[str]:
    """The series the archive offers this target, lowest first."""
    return sorted({s for by in offered(profile).values() for s in by}, key=_series_key)


def available(profile: TargetProfile, series: str) -> list[tuple[str, str]]:
    """``(suite, release)`` pairs for a series, preferred first.

    The suites where the series was last seen are read first; only when they no longer offer it
    is every suite the mirror has read (once per index lifetime)."""
    suites = _suites()
    hint = [s for name in LAST_KNOWN.get(series, ()) for s in suites if s.name == name]
    refused: list[InfraError] = []
    by_suite = {name: by for name, by in _scan(profile, hint, refused).items() if by.get(series)}
    if not by_suite:
        rest = [s for s in suites if s not in hint]
        by_suite = {name: by for name, by in _scan(profile, rest, refused).items() if by.get(series)}
    if not by_suite and refused:
        raise refused[0]
    order = {s.name: i for i, s in enumerate(hint + [s for s in suites if s not in hint])}

    def builds_here(suite: str) -> bool:
        headers = load_index(suite, profile.debian_arch).get(f"linux-headers-{by_suite[suite][series][0]}")
        return host_builds(profile, _gcc_of(headers) if headers else None)

    ranked = sorted(by_suite, key=lambda name: (not builds_here(name), order[name]))
    return [(name, rel) for name in ranked for rel in by_suite[name][series]]


def _not_offered(profile: TargetProfile, series: str) -> UsageError:
    have = ", ".join(archive_series(profile)) or "nothing"
    gone = " any more" if series in profile.series else ""   # a series this board was tested with
    # (What the archive offers *this target*: a flavour may lack a series others have.)
    return UsageError(f"series {series} is not in the archive{gone}; it offers: {have}", hint="kharness kernels")


def series_for(profile: TargetProfile, wanted: str | None) -> tuple[str, str | None]:
    """``(series, suite or None)`` for a series or an alias; the suite is pinned by an alias."""
    wanted = (wanted or "").strip()
    if not wanted:
        if available(profile, DEFAULT_SERIES):
            return DEFAULT_SERIES, None
        wanted = "stable"
        ui.info(f"[yellow]the archive no longer offers {DEFAULT_SERIES}: using the stable suite's kernel[/yellow]")
    if _SERIES_RE.match(wanted):
        return wanted, None
    if wanted == "newest":
        have = archive_series(profile)
        if not have:
            raise _not_offered(profile, wanted)
        return have[-1], None
    names = alias_names(_suites())
    if wanted not in names:
        raise UsageError(f"unknown kernel {wanted!r} for target {profile.name}",
                         hint="give a series such as 6.1, an alias (stable, oldstable, testing, unstable, "
                              "backports, newest, a codename) or an exact release (see kharness kernels)")
    suite = names[wanted]
    refused: list[InfraError] = []
    by = _scan(profile, [s for s in _suites() if s.name == suite], refused).get(suite, {})
    if not by:
        if refused:
            raise refused[0]
        raise UsageError(f"{wanted} ({suite}) has no {profile.kernel_flavour} kernel for {profile.name}",
                         hint="kharness kernels lists what each suite offers")
    return max(by, key=_series_key), suite


def _tested_note(profile: TargetProfile, series: str) -> None:
    if series not in profile.series:
        ui.info(f"[yellow]{series} is not among the series kharness is tested with on {profile.name} "
                f"({', '.join(profile.series)})[/yellow]")


def resolve_kernel(profile: TargetProfile, wanted: str | None) -> KernelSpec:
    """The exact kernel for ``wanted``: a series, an alias, an exact release, or None for the default."""
    wanted = (wanted or "").strip()
    if not wanted or _SERIES_RE.match(wanted) or not re.match(r"^\d+\.\d+\.", wanted):
        series, suite = series_for(profile, wanted)
        pairs = available(profile, series) if suite is None else \
            [(suite, rel) for rel in _releases(load_index(suite, profile.debian_arch), profile.kernel_flavour, series)]
        for suite, release in pairs[:1]:
            _tested_note(profile, series)
            return _spec(profile, load_index(suite, profile.debian_arch), release)
        raise _not_offered(profile, series)
    series = series_of(wanted)
    if not wanted.endswith("-" + profile.kernel_flavour):
        raise UsageError(f"kernel {wanted!r} is not a {profile.kernel_flavour} kernel (target {profile.name})",
                         hint=f"releases for this target end in -{profile.kernel_flavour}")
    pairs = available(profile, series)
    for suite, release in pairs:
        if release == wanted:
            _tested_note(profile, series)
            return _spec(profile, load_index(suite, profile.debian_arch), release)
    have = ", ".join(r for _, r in pairs) or "none"
    raise UsageError(f"kernel {wanted} is not in Debian's archive for {profile.name}",
                     hint=f"available {series} releases: {have}")


def source_suites(series: str) -> list[str]:
    """The suite whose index (the host's architecture) has ``linux-source-<series>`` (for kernels kharness builds), as a
    list of at most one: where it was last seen if it is still there, else the first that has it."""
    suites = _suites()
    names = [s.name for s in suites]
    ordered = [n for n in LAST_KNOWN.get(series, ()) if n in names] + \
        [n for n in names if n not in LAST_KNOWN.get(series, ())]
    out = []
    for name in ordered:
        try:
            if load_index(name, hostarch.debian_arch()).get(f"linux-source-{series}"):
                out.append(name)
                break
        except InfraError:
            continue
    return out
