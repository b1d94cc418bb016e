"""One place that plans a guest: target x kernel spec x debug checkers x kernel tree -> which kernel
to get (Debian's package, or a build from Debian's linux-source or the user's tree), which
profile to boot it with, and the order to load the modules in.

``kharness run`` (so every matrix cell and every pytest-plugin cell, which are runs),
``kharness kernel build`` and ``kharness image build`` all plan here, so ``--kernel 6.1-debug``,
a debug guest's memory and the default series mean the same everywhere.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from kharness.elf import depends, load_order
from kharness.errors import UsageError
from kharness.image.dtb import prepare_dtb
from kharness.image.initramfs import ensure_base_image
from kharness.kernels.debug import ALL as DEBUG_ALL
from kharness.kernels.debug import DEBUG_MEMORY_MB, debug_fragments, parse_checkers, split_kernel
from kharness.kernels.resolve import DEFAULT_SERIES, KernelSpec, resolve_kernel, series_for
from kharness.kernels.source import SourceBuild, debian_source, source_spec, user_tree
from kharness.kernels.store import ensure_kernel
from kharness.targets import TargetProfile, get_target

if TYPE_CHECKING:
    from kharness.build.kbuild import BuiltModule
    from kharness.modconfig import ModuleConfig

_SERIES_RE = re.compile(r"\d+\.\d+")

# Where the kernel comes from (GuestPlan.kernel_from).
DEBIAN_PACKAGE = "debian-package"   # Debian's linux-image/linux-headers packages
DEBIAN_SOURCE = "debian-source"     # built by kharness from Debian's linux-source-<series>
TREE = "tree"                       # built by kharness from the user's --kernel-tree


@dataclass(frozen=True)
class GuestPlan:
    """What to build and boot, decided before any download or build."""

    profile: TargetProfile                 # the target, with a debug guest's memory applied
    kernel: str | None = None              # series, release or alias asked for ("-debug" split off); None: default
    debug: tuple[str, ...] = ()            # the debug kernel's checkers; (): not a debug kernel
    kernel_tree: Path | None = None        # build the kernel from this source tree
    kernel_config: tuple[Path, ...] = ()   # extra config fragments for that build
    accel: str = "auto"                    # the accelerator wished for (vm.accel chooses)

    @property
    def kernel_from(self) -> str:
        if self.kernel_tree is not None:
            return TREE
        if self.profile.kernel_source == "debian" and not self.debug:
            return DEBIAN_PACKAGE
        return DEBIAN_SOURCE

    @property
    def from_debian(self) -> bool:
        """Debian's packaged kernel (else one kharness builds from source)."""
        return self.kernel_from == DEBIAN_PACKAGE

    def resolve(self) -> tuple[KernelSpec, SourceBuild | None]:
        """The kernel: Debian's packages (resolved), or a source build (built the first time)."""
        return resolve_any(self.profile, self.kernel, self.kernel_tree, self.kernel_config, self.debug)

    def image(self, spec: KernelSpec, built: SourceBuild | None):
        """(kernel bundle, base initramfs, device tree or None), cached."""
        return guest_image(self.profile, spec, built)


def kernel_choice(kernel: str | None, debug: tuple[str, ...] | str | None) -> tuple[str | None, tuple[str, ...]]:
    """``--kernel 6.1-debug`` is series 6.1 with every debug checker; ``--debug`` picks a set."""
    wanted, suffix = split_kernel(kernel)
    checkers = parse_checkers(debug) if isinstance(debug, str) else tuple(debug or ())
    return wanted, checkers or (DEBUG_ALL if suffix else ())


def debug_profile(profile: TargetProfile, debug: tuple[str, ...]) -> TargetProfile:
    """The profile a guest boots with: a debug kernel's checkers' metadata (KASAN's shadow,
    kmemleak's and lockdep's records) needs more memory (and so gets its own snapshot)."""
    if not debug:
        return profile
    return dataclasses.replace(profile, memory_mb=max(profile.memory_mb, DEBUG_MEMORY_MB))


def plan_guest(target: str | TargetProfile, kernel: str | None = None,
               debug: tuple[str, ...] | str | None = (), kernel_tree: Path | None = None,
               kernel_config: Sequence[Path] = (), accel: str = "auto") -> GuestPlan:
    """The guest for ``target`` and ``--kernel``/``--debug``/``--kernel-tree``/``--kernel-config``.

    Bad input (an unknown checker or target, a debug kernel for a board or checker kharness cannot
    build) is refused here, before any work."""
    wanted, checkers = kernel_choice(kernel, debug)
    profile = get_target(target) if isinstance(target, str) else target
    profile = debug_profile(profile, checkers)
    debug_fragments(profile, checkers)   # an unsupported target or checker: say so before any work
    return GuestPlan(profile, wanted, checkers, kernel_tree, tuple(kernel_config), accel)


def default_series(profile: TargetProfile) -> str:
    return DEFAULT_SERIES if DEFAULT_SERIES in profile.series else profile.series[0]


def build_source(profile: TargetProfile, wanted: str | None, kernel_tree: Path | None = None,
                 kernel_config: tuple[Path, ...] = (), debug: tuple[str, ...] = ()
                 ) -> tuple[str, SourceBuild]:
    """``(series, build)`` of the kernel kharness builds from source (the first time; then cached):
    Debian's linux-source-<series>, or the user's tree. An alias (``stable``) names the series the
    archive's suite offers now."""
    series = wanted or default_series(profile)
    if not kernel_tree and not _SERIES_RE.fullmatch(series) and not re.match(r"\d+\.\d+\.", series):
        # An alias (stable, newest, a codename): the series the archive's suite offers now.
        series, _ = series_for(dataclasses.replace(profile, kernel_source="debian"), series)
    if kernel_tree:
        return series, user_tree(profile, kernel_tree, kernel_config, debug)
    if kernel_config:
        raise UsageError("--kernel-config applies to --kernel-tree", hint="give --kernel-tree DIR too")
    if not _SERIES_RE.fullmatch(series):
        raise UsageError(f"kharness builds this kernel from Debian's linux-source-<series>: give a series "
                         f"such as 6.1, not {series!r}", hint=f"series: {', '.join(profile.series)}")
    return series, debian_source(profile, series, debug)


def resolve_any(profile: TargetProfile, wanted: str | None, kernel_tree: Path | None = None,
                kernel_config: tuple[Path, ...] = (), debug: tuple[str, ...] = ()
                ) -> tuple[KernelSpec, SourceBuild | None]:
    """The kernel for a target: from Debian's packages, or built from source (the first time):
    Debian's linux-source for targets Debian has no kernel for and for debug kernels, or the
    user's tree."""
    if profile.kernel_source == "debian" and kernel_tree is None and not debug:
        return resolve_kernel(profile, wanted), None
    series, built = build_source(profile, wanted, kernel_tree, tuple(kernel_config), debug)
    return source_spec(built, series), built


def guest_image(profile: TargetProfile, spec: KernelSpec, built: SourceBuild | None):
    """Everything a guest boots from, cached: (kernel bundle, base initramfs, device tree or None)."""
    kernel = (built.kernel_bundle(profile) if built else
              ensure_kernel(spec, boot=profile.kernel_boot, want_modules=profile.guest_modules))
    base = ensure_base_image(profile, kernel)
    dtb = prepare_dtb(kernel.dtb_dir, profile.dtb, profile.dtb_fixups, spec.release) if profile.dtb else None
    return kernel, base, dtb


def insmod_order(mods: list[BuiltModule], config: ModuleConfig) -> list[BuiltModule]:
    """The modules under test in the order to load them: ``load_order`` from kharness.toml, else
    each after the ones its ``depends=`` names (else in the order they were built)."""
    by_name = {m.name: m for m in mods}
    if config.load_order:
        missing = [n for n in config.load_order if n not in by_name]
        if missing:
            raise UsageError(f"load_order names {missing}, which the build did not produce",
                             hint=f"built: {', '.join(by_name)}")
        return [by_name[n] for n in config.load_order]
    return [by_name[n] for n in load_order(by_name, {m.name: depends(m.modinfo) for m in mods})]
