"""Turn ``--kernel 6.1`` or ``--kernel 6.1.0-50-amd64`` into exact Debian packages.

A series maps to the Debian suites that ship it, first choice first. Within a suite the newest
release for which both the image and the headers are in the index wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from debian.debian_support import Version

from kharness import ui
from kharness.errors import InfraError, UsageError
from kharness.kernels.index import PackageIndex, Pkg, load_index
from kharness.targets import TargetProfile

# Series -> suites, first choice first. 6.12 prefers bookworm-backports: it is built with gcc-12,
# which the bookworm host has; trixie's 6.12 is built with gcc-14.
SERIES_SUITES: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye",),
    "6.1": ("bookworm",),
    "6.12": ("bookworm-backports", "trixie"),
    "7.2": ("sid",),
}
DEFAULT_SERIES = "6.1"
HOST_ARCH = "amd64"  # linux-kbuild-* holds host executables: always take the host's build

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


def _dep_names(depends: str) -> list[str]:
    """Package names in a Depends field (first alternative of each)."""
    out = []
    for clause in depends.split(","):
        first = clause.split("|")[0].strip()
        if first:
            out.append(first.split()[0].split(":")[0])
    return out


def _releases(index: PackageIndex, flavour: str, series: str) -> list[str]:
    """Releases with both image and headers in this index, newest first."""
    # 6.1.0-50-amd64, 6.12.95+deb12-amd64, 7.2.13+deb14-amd64; never 6.1.0-50-rt-amd64.
    pat = re.compile(rf"^linux-image-({re.escape(series)}\.\d+(?:-\d+)?(?:\+deb\d+)?-{re.escape(flavour)})$")
    found = []
    for name in index.names():
        m = pat.match(name)
        if m and index.get(f"linux-headers-{m.group(1)}"):
            found.append((Version(index.get(name).version), m.group(1)))
    found.sort(reverse=True)
    return [rel for _, rel in found]


def _spec(profile: TargetProfile, index: PackageIndex, release: str) -> KernelSpec:
    image = index.get(f"linux-image-{release}")
    headers = index.get(f"linux-headers-{release}")
    assert image and headers
    image_pkgs = [image]
    # From 7.2, linux-image-* is an empty metapackage: the kernel is in linux-binary-*, the
    # modules in linux-modules-*, device trees and modules.builtin in linux-base-<release>.
    for dep in _dep_names(image.depends):
        if dep.startswith(("linux-binary-", "linux-modules-", f"linux-base-{release}")) and index.get(dep):
            image_pkgs.append(index.get(dep))
    header_pkgs = [headers]
    host = load_index(index.suite, HOST_ARCH) if profile.debian_arch != HOST_ARCH else index
    gcc = None
    for dep in _dep_names(headers.depends):
        if dep.startswith("linux-headers-") and dep.endswith("-common"):
            common = index.get(dep)
            if common:
                header_pkgs.append(common)
        elif dep.startswith("linux-kbuild-"):
            kb = host.get(dep)
            if kb is None:
                raise UsageError(f"{dep} is not in the {index.suite} {HOST_ARCH} index")
            header_pkgs.append(kb)
        m = re.match(r"^(?:linux-compiler-)?(gcc-\d+)", dep)
        if m and gcc is None:
            gcc = m.group(1)
    return KernelSpec(release=release, series=series_of(release), suite=index.suite,
                      version=image.version, image_pkgs=tuple(image_pkgs),
                      header_pkgs=tuple(header_pkgs), gcc=gcc)


def available(profile: TargetProfile, series: str) -> list[tuple[str, str]]:
    """``(suite, release)`` pairs for a series, preferred first."""
    out: list[tuple[str, str]] = []
    refused: list[InfraError] = []
    for suite in SERIES_SUITES.get(series, ()):
        try:
            index = load_index(suite, profile.debian_arch)
        except InfraError as e:
            # A suite whose index does not verify is never used. Another suite that ships the
            # series and does verify may be (said out loud); with none, the refusal stands.
            refused.append(e)
            ui.info(f"[yellow]not using {suite}/{profile.debian_arch}: {e}[/yellow]")
            continue
        out += [(suite, rel) for rel in _releases(index, profile.kernel_flavour, series)]
    if not out and refused:
        raise refused[0]
    return out


def resolve_kernel(profile: TargetProfile, wanted: str | None) -> KernelSpec:
    """The exact kernel for ``wanted`` (a series, an exact release, or None for the default)."""
    wanted = (wanted or DEFAULT_SERIES).strip()
    known = ", ".join(s for s in SERIES_SUITES if s in profile.series)
    if _SERIES_RE.match(wanted):
        if wanted not in profile.series or wanted not in SERIES_SUITES:
            raise UsageError(f"kernel series {wanted} is not available for target {profile.name}",
                             hint=f"available series: {known}")
        for suite, release in available(profile, wanted)[:1]:
            return _spec(profile, load_index(suite, profile.debian_arch), release)
        raise UsageError(f"no {wanted} kernel for {profile.debian_arch} found in Debian's indices")
    series = series_of(wanted)
    if series not in SERIES_SUITES or series not in profile.series:
        raise UsageError(f"unknown kernel {wanted!r} for target {profile.name}",
                         hint=f"give a series ({known}) or an exact release such as "
                              f"6.1.0-NN-{profile.kernel_flavour}")
    if not wanted.endswith("-" + profile.kernel_flavour):
        raise UsageError(f"kernel {wanted!r} is not a {profile.kernel_flavour} kernel (target {profile.name})",
                         hint=f"releases for this target end in -{profile.kernel_flavour}")
    pairs = available(profile, series)
    for suite, release in pairs:
        if release == wanted:
            return _spec(profile, load_index(suite, profile.debian_arch), release)
    have = ", ".join(r for _, r in pairs) or "none"
    raise UsageError(f"kernel {wanted} is not in Debian's archive for {profile.name}",
                     hint=f"available {series} releases: {have}")
