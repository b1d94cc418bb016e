"""The pytest plugin, tested with pytester in a subprocess: real boots of examples/pytest."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from conftest import EXAMPLES, RUN_LIMIT, require_series
from kharness.paths import cache_dir

pytest_plugins = ["pytester"]
CACHE = cache_dir()  # now, before pytester points HOME elsewhere
pytestmark = pytest.mark.vm


@pytest.fixture
def project(pytester, monkeypatch):
    require_series("x86_64", "6.1")   # every test here runs 6.1 (the plugin's default kernel)
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


# Each test of the inner run writes down its worker, its cell and when it ran, from the start of
# its setup (a cell's first test boots that cell's guest there) to the end of its teardown (its
# last one closes it). time.monotonic() is the system-wide CLOCK_MONOTONIC: comparable between
# the workers, which are processes of one host.
SPAN_RECORDER = """
import json, os, time
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.monotonic()
    try:
        return (yield)
    finally:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
        span = {"worker": worker, "cell": item.callspec.params["kh_cell"].id, "test": item.name,
                "start": start, "end": time.monotonic()}
        with open(os.path.join(SPANS, worker + ".jsonl"), "a") as f:
            f.write(json.dumps(span) + "\\n")
"""


def _cell_spans(spans_dir) -> dict[tuple[str, str], tuple[float, float]]:
    """(worker, cell) -> from the start of its first test to the end of its last one."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for f in spans_dir.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            s = json.loads(line)
            key = (s["worker"], s["cell"])
            a, b = out.get(key, (s["start"], s["end"]))
            out[key] = (min(a, s["start"]), max(b, s["end"]))
    return out


@pytest.mark.timeout(RUN_LIMIT + 600)   # its ppc64 cell builds the kernel (or waits for a worker doing it)
def test_xdist_runs_cells_in_parallel(project):
    spans = project.path / "spans"
    spans.mkdir()
    (project.path / "mod" / "tests" / "conftest.py").write_text(f"SPANS = {str(spans)!r}\n" + SPAN_RECORDER)
    r = project.runpytest_subprocess("mod/tests/test_pytest_demo.py", "-n", "2", "-k", "loaded or write_then",
                                     "--kh-target", "x86_64,ppc64", "--kh-kernel", "6.1", "-p", "no:cacheprovider",
                                     timeout=2700)
    r.assert_outcomes(passed=4)
    r.stdout.fnmatch_lines(["*2 workers*"])
    cells = _cell_spans(spans)
    assert {c for _, c in cells} == {"x86_64-6.1", "ppc64-6.1"}, cells
    # Parallel: two cells ran on two workers at the same time (their spans overlap).
    overlapping = [(a, b) for a in cells for b in cells if a[0] < b[0] and a[1] != b[1]
                   and max(cells[a][0], cells[b][0]) < min(cells[a][1], cells[b][1])]
    assert overlapping, cells
