"""The one entry point for building a module: the way its own files ask for.

* ``dkms``: the directory has a dkms.conf (kharness.build.dkmsbuild);
* ``own-makefile``: its Makefile has rules of its own: its default target is run
  (kharness.build.ownmake), with kbuild ``M=`` when that builds no module;
* ``kbuild``: ``M=`` on its Kbuild file, or on the one kharness generates (kharness.build.kbuild).

The outcome's ``built_by`` says which way built it, and ``note`` why it was not the first one
tried. A dkms.conf that excludes the kernel or architecture raises
:class:`~kharness.build.dkms.BuildExcluded`: the caller records the cell as skipped.
"""

from __future__ import annotations

from kharness.build.dkms import BuildExcluded
from kharness.build.dkmsbuild import run_dkms
from kharness.build.kbuild import BuildOutcome, run_kbuild
from kharness.build.makefile import BuildPlan, build_way
from kharness.build.ownmake import run_own_makefile
from kharness.build.toolchain import Toolchain
from kharness.kernels.store import HeadersBundle

__all__ = ["BuildExcluded", "build_module"]


def build_module(plan: BuildPlan, headers: HeadersBundle, tc: Toolchain, *, extra_vars: list[str] | None = None,
                 jobs: int | None = None, timeout: float = 900) -> BuildOutcome:
    """Build ``plan`` for ``headers`` with ``tc``; ``extra_vars`` (make variables such as ``W=1``)
    only reach a kbuild build."""
    way = build_way(plan)
    if way == "dkms":
        return run_dkms(plan, headers, tc, jobs=jobs, timeout=timeout)
    if way == "own-makefile" and not extra_vars:
        return run_own_makefile(plan, headers, tc, jobs=jobs, timeout=timeout)
    return run_kbuild(plan, headers, tc, extra_vars=extra_vars, jobs=jobs, timeout=timeout)
