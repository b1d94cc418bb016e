"""Every template builds, loads, passes its own checks and unloads: all of them on x86_64 with 6.1
and a sample elsewhere here; the full template x target x kernel grid with `make test-templates`
(KH_TEMPLATE_GRID=1). Generated code builds without warnings with W=1 on 6.1."""

from __future__ import annotations

import os

import pytest

from conftest import require_series
from kharness.templates import TEMPLATES, create

pytestmark = pytest.mark.vm

if os.environ.get("KH_TEMPLATE_GRID"):
    from kharness.targets import all_targets
    CELLS = [(t, p.name, k) for t in TEMPLATES for p in all_targets().values() for k in p.series]
else:
    CELLS = [(t, "x86_64", "6.1") for t in TEMPLATES] + [
        ("aix-kext", "ppc64", "6.1"), ("chardev", "rpi2", "6.1"), ("gpio-irq", "arm64", "7.2"),
        ("params", "ppc64le", "6.12"),
        ("params", "ppc64", "6.1")]   # its busybox is built from source: a parameter with spaces


@pytest.mark.parametrize("template,target,kernel", CELLS)
def test_template_passes_its_checks(kharness, tmp_path, template, target, kernel):
    require_series(target, kernel)
    name = template.replace("-", "_") + "_demo"
    d = tmp_path / name
    create(template, name, d, author="kharness tests", description="Template under test")
    o = kharness("run", str(d), "--target", target, "--kernel", kernel, "--boot-timeout", "600", "--timeout", "120")
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert all(c["status"] in ("pass", "skipped") for c in o.result["checks"]) and o.result["checks"]
    assert [p["status"] for p in o.result["phases"]] == ["pass"] * 6
    assert not [f for f in o.result["findings"] if f.get("blocking")]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_builds_without_warnings_at_w1(tmp_path, template):
    from kharness.build.kbuild import run_kbuild
    from kharness.build.makefile import plan_build
    from kharness.build.toolchain import pick_toolchain
    from kharness.kernels.resolve import resolve_kernel
    from kharness.kernels.store import ensure_headers
    from kharness.targets import get_target

    require_series("x86_64", "6.1")
    name = template.replace("-", "_") + "_w1"
    create(template, name, tmp_path / name, author="kharness tests", description="W=1 build")
    prof = get_target("x86_64")
    spec = resolve_kernel(prof, "6.1")
    outcome = run_kbuild(plan_build(tmp_path / name), ensure_headers(spec), pick_toolchain(prof, spec),
                         extra_vars=["W=1"])
    assert outcome.ok, outcome.log
    assert [d.to_dict() for d in outcome.diagnostics if d.severity == "warning"] == []


def test_generated_code_passes_checkpatch(tmp_path):
    """Debian's headers packages do not ship checkpatch.pl; its linux-source-6.1 does (kharness
    fetches it anyway, for the ppc64 kernel): every generated .c and .h passes --no-tree, with
    no error and no warning."""
    import subprocess

    from kharness.kernels.source import source_tree

    checkpatch = source_tree("6.1") / "scripts" / "checkpatch.pl"
    problems = []
    for template in sorted(TEMPLATES):
        name = template.replace("-", "_") + "_cp"
        files = create(template, name, tmp_path / name, author="kharness tests", description="checkpatch")
        for f in files:
            if f.suffix not in (".c", ".h"):
                continue
            p = subprocess.run(["perl", str(checkpatch), "--no-tree", "--terse", "--show-types", "-f", str(f)],
                               capture_output=True, text=True)
            problems += [line for line in p.stdout.splitlines() if ": ERROR:" in line or ": WARNING:" in line]
            assert p.returncode == 0 or problems, p.stderr      # it ran, and complained only in words
    assert problems == []
