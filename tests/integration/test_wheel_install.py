"""kharness installed like any Python tool: the wheel built from this repository, installed into a
fresh virtual environment, runs `kharness doctor` and a real `kharness run` of examples/hello from
a directory outside the repository (so everything it reads at run time, board profiles, /init,
templates, the agent's source, comes from the wheel). The kernel cache is the shared one
(``KHARNESS_CACHE`` or ``~/.cache/kharness``): content-keyed, so the installed copy finds what a
checkout made, and the run restores a saved guest in seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.vm

PIP_LIMIT = 600     # building the wheel and installing its dependencies (from pip's cache, or PyPI)
RUN_LIMIT = 900     # the run restores a saved guest; a cold cache would boot and build more


def _run(argv, *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(PIP_LIMIT + 2 * RUN_LIMIT + 120)
def test_the_wheel_installed_in_a_fresh_venv_runs_hello_outside_the_repository(tmp_path):
    outside = tmp_path / "project"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["KHARNESS_PROGRESS"] = "0"

    wheels = tmp_path / "wheels"
    p = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT], cwd=outside, env=env,
             timeout=PIP_LIMIT)
    assert p.returncode == 0, p.stderr
    (wheel,) = wheels.glob("kharness-*.whl")

    venv = tmp_path / "venv"
    # The repository's own interpreter, not the test venv's: a venv made from a venv's python is fine.
    p = _run([sys.executable, "-m", "venv", venv], cwd=outside, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    p = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=outside, env=env, timeout=PIP_LIMIT)
    assert p.returncode == 0, p.stderr

    # The installed copy, not this checkout: its data directories are the wheel's.
    p = _run([venv / "bin" / "python", "-c", "from kharness.paths import data_dir; import kharness; "
              "print(kharness.__file__); print(data_dir('images')); print(data_dir('module_templates'))"],
             cwd=outside, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    pkg, images, templates = p.stdout.split()
    site = str(venv / "lib")
    assert pkg.startswith(site) and images.startswith(site) and templates.startswith(site), p.stdout
    assert Path(images, "x86_64.toml").is_file() and Path(images, "init.sh").is_file()
    assert Path(pkg).parent.joinpath("hw", "agent", "kh-agent.c").is_file()
    assert Path(pkg).parent.joinpath("hw", "khgpio", "khgpio.c").is_file()

    kh = venv / "bin" / "kharness"
    p = _run([kh, "doctor", "--target", "x86_64"], cwd=outside, env=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "everything x86_64 needs is here" in p.stdout

    shutil.copytree(EXAMPLES / "hello", outside / "hello")
    p = _run([kh, "run", "hello", "--json", "out.json"], cwd=outside, env=env, timeout=RUN_LIMIT)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads((outside / "out.json").read_text())
    assert result["status"] == "pass"
    assert result["kernel"]["release"].startswith("6.1.")
    assert {c["name"]: c["status"] for c in result["checks"]}["myint parameter is visible in sysfs"] == "pass"

    # The same result on stdout, and nothing else there: what a CI step pipes into jq.
    p = _run([kh, "run", "hello", "--json", "-"], cwd=outside, env=env, timeout=RUN_LIMIT)
    assert p.returncode == 0, p.stderr
    again = json.loads(p.stdout)
    assert again["status"] == "pass" and again["module_dir"] == "hello"
    assert "PASS" in p.stderr   # the summary went to stderr
