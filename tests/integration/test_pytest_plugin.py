"""The pytest plugin, tested with pytester in a subprocess: real boots of examples/pytest."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest

from conftest import EXAMPLES
from kharness.paths import cache_dir

pytest_plugins = ["pytester"]
CACHE = cache_dir()  # now, before pytester points HOME elsewhere
pytestmark = pytest.mark.vm


@pytest.fixture
def project(pytester, monkeypatch):
    # pytester gives the inner run a HOME of its own: keep the real kernel/image cache.
    monkeypatch.setenv("KHARNESS_CACHE", str(CACHE))
    shutil.copytree(EXAMPLES / "pytest", pytester.path / "mod")
    return pytester


def test_fixtures_markers_and_junit(project):
    r = project.runpytest_subprocess("mod/tests", "--kh-kernel", "6.1", "--junitxml", "j.xml", "-p", "no:cacheprovider",
                                     "--kh-keep-logs", "logs", timeout=2700)
    r.assert_outcomes(passed=5, skipped=1)   # the ppc64-only test has no cell here
    suite = ET.parse(project.path / "j.xml").getroot()
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["kh_target"] == "x86_64" and props["kh_kernel"].startswith("6.1.")
    assert props["kh_accelerator"] in ("kvm", "tcg")
    names = [c.get("name") for c in suite.iter("testcase")]
    assert "test_write_then_read[x86_64-6.1]" in names
    kept = sorted(p.name for p in (project.path / "logs").iterdir())
    assert len(kept) == 2 and all((project.path / "logs" / k / "result.json").is_file() for k in kept)  # shared + fresh


def test_a_kernel_problem_during_a_test_fails_it(project):
    (project.path / "mod" / "tests" / "test_taint.py").write_text(
        "def test_sets_the_warn_taint(kh_guest):\n"
        "    kh_guest.run('echo 512 > /proc/sys/kernel/tainted')\n"
        "def test_next_one_is_fine(proc):\n"
        "    assert proc.read('/proc/pytest_demo')\n")
    (project.path / "mod" / "tests" / "test_value.py").write_text(
        "def test_wrong_value(proc):\n"
        "    assert proc.read('/proc/pytest_demo') == 'not what it holds'\n")
    r = project.runpytest_subprocess("mod/tests/test_taint.py", "mod/tests/test_value.py", "--kh-kernel", "6.1",
                                     "-p", "no:cacheprovider", "--junitxml", "j.xml", timeout=2700)
    r.assert_outcomes(passed=1, failed=2)
    r.stdout.fnmatch_lines(["*kernel reported taint during the test*", "*kharness dmesg*"])
    # The JUnit failures carry the guest's kernel log and console, for CI to show.
    failures = {c.get("name"): c.find("failure") for c in ET.parse(project.path / "j.xml").getroot().iter("testcase")}
    for name in ("test_sets_the_warn_taint[x86_64-6.1]", "test_wrong_value[x86_64-6.1]"):
        body = failures[name].text
        assert "kharness dmesg" in body and "pytest_demo: /proc/pytest_demo created" in body, name
        assert "kharness console" in body, name


def test_kernel_marker_and_the_accel_option(project):
    (project.path / "mod" / "tests" / "test_marks.py").write_text(
        "import pytest\n"
        "@pytest.mark.kh_kernels('6.12')\n"
        "def test_only_on_6_12(kh_guest):\n"
        "    raise AssertionError('must not run on 6.1')\n"
        "@pytest.mark.kh_kernels('6.1')\n"
        "def test_on_6_1(kh_guest):\n"
        "    assert kh_guest.run('uname -r').stdout.startswith('6.1.')\n")
    r = project.runpytest_subprocess("mod/tests/test_marks.py", "--kh-kernel", "6.1", "--kh-accel", "tcg",
                                     "--junitxml", "j.xml", "-p", "no:cacheprovider", timeout=2700)
    r.assert_outcomes(passed=1, skipped=1)
    suite = ET.parse(project.path / "j.xml").getroot()
    assert {p.get("value") for p in suite.iter("property") if p.get("name") == "kh_accelerator"} == {"tcg"}


def test_xdist_runs_cells_in_parallel(project):
    r = project.runpytest_subprocess("mod/tests/test_pytest_demo.py", "-n", "2", "-k", "loaded or write_then",
                                     "--kh-target", "x86_64,ppc64", "--kh-kernel", "6.1", "-p", "no:cacheprovider",
                                     timeout=2700)
    r.assert_outcomes(passed=4)
    r.stdout.fnmatch_lines(["*2 workers*"])
