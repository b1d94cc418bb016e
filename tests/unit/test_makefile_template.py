"""One kbuild Makefile template: `kharness new`, `kharness makefile` and `kharness run` write the
same one, and its normal-make half passes ARCH and CROSS_COMPILE on to kbuild."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kharness.build.makefile import plan_build, render_makefile
from kharness.templates import TEMPLATES, render

ROOT = Path(__file__).resolve().parents[2]


def test_there_is_one_kbuild_makefile_template():
    # One template (module_templates/kbuild/Makefile.in) and one writer of its kbuild rules.
    templates = [p.relative_to(ROOT) for p in (ROOT / "module_templates").rglob("*")
                 if p.is_file() and any(w in p.read_text(errors="replace") for w in ("obj-m", "KERNELRELEASE"))]
    assert templates == [Path("module_templates/kbuild/Makefile.in")]
    writers = [p.relative_to(ROOT) for p in (ROOT / "kharness").rglob("*.py") if "obj-m +=" in p.read_text()]
    assert writers == [Path("kharness/build/makefile.py")]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_kharness_new_writes_the_makefile_kharness_makefile_generates(tmp_path, template):
    files = render(template, "mymod", "A. Author <a@example.com>", "Demo")
    d = tmp_path / "mymod"
    d.mkdir()
    for rel, text in files.items():
        if rel.endswith(".c"):
            (d / rel).write_text(text)
    generated = render_makefile(plan_build(d, name="mymod", sources=sorted(p.name for p in d.glob("*.c"))))
    # The same text but for the order of the objects of a multi-file module.
    assert sorted(files["Makefile"].splitlines()) == sorted(generated.splitlines())


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
@pytest.mark.parametrize("how", ["command line", "environment"])
def test_the_makefile_passes_arch_and_cross_compile_to_kbuild(tmp_path, how):
    kdir = tmp_path / "kdir"          # a stand-in for a kernel build tree: says what it was given
    kdir.mkdir()
    (kdir / "Makefile").write_text("modules clean:\n\t@echo kbuild got ARCH=$(ARCH) CROSS_COMPILE=$(CROSS_COMPILE) M=$(M) $@\n")
    mod = tmp_path / "mod"
    mod.mkdir()
    (mod / "Makefile").write_text(render("hello", "mymod", "A", "Demo")["Makefile"])
    cross = {"ARCH": "arm64", "CROSS_COMPILE": "aarch64-linux-gnu-"}
    argv = ["make", "-s", "-C", str(mod), f"KDIR={kdir}", "all"]
    env = dict(os.environ)
    if how == "command line":
        argv += [f"{k}={v}" for k, v in cross.items()]
    else:
        env.update(cross)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert f"kbuild got ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- M={mod} modules" in p.stdout
