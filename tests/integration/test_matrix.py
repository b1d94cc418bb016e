"""kharness matrix for real: a 2x2 matrix of examples/hello, its reports, the HTML rendered in a
real headless browser (Debian's chromium; the screenshot is kept under artifacts/), a baseline
comparison and infrastructure errors kept apart from module failures."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import EXAMPLES, FIXTURES, ROOT, require_series

pytestmark = pytest.mark.vm


def test_two_by_two_with_html_report(kharness, tmp_path):
    require_series("x86_64", "6.1", "6.12")
    require_series("arm64", "6.1", "6.12")
    out = tmp_path / "mx"
    o = kharness("matrix", str(EXAMPLES / "hello"), "--targets", "x86_64,arm64", "--kernels", "6.1,6.12",
                 "-j", "2", "-o", str(out), json_out=False)
    assert o.rc == 0, o.stdout + o.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["schema"] == "kharness/matrix/v1" and s["counts"]["pass"] == 4
    assert {c["id"] for c in s["cells"]} == {"x86_64-6.1", "x86_64-6.12", "arm64-6.1", "arm64-6.12"}
    for c in s["cells"]:
        for f in ("result", "console", "dmesg"):
            assert (out / c["files"][f]).is_file()
        assert c["release"] and c["accelerator"] in ("kvm", "tcg")
    assert "PASS" in o.stdout and "4 passed" in o.stdout
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "0"
    page = (out / "index.html").read_text()
    assert page.count('class="cell"') == 4
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is not installed (make install installs it)")
    art = ROOT / "artifacts"
    art.mkdir(exist_ok=True)
    shot = art / "matrix-report.png"
    shot.unlink(missing_ok=True)
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,700",
                        f"--screenshot={shot}", (out / "index.html").as_uri()],
                       capture_output=True, text=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 5000, p.stderr[-2000:]
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (out / "index.html").as_uri()], capture_output=True, text=True, timeout=180).stdout
    assert dom.count('class="cell"') == 4 and "4 pass" in dom


def test_baseline_and_error_cells(kharness, tmp_path):
    require_series("x86_64", "6.1")
    out = tmp_path / "mx"
    base = tmp_path / "prev.json"
    base.write_text(json.dumps({"cells": [{"id": "x86_64-6.1", "status": "pass"}]}))
    o = kharness("matrix", str(FIXTURES / "init_enodev"), "--targets", "x86_64", "--kernels", "6.1",
                 "-o", str(out), "--baseline", str(base), json_out=False)
    assert o.rc == 1, o.stdout + o.stderr
    assert "newly broken x86_64-6.1" in o.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["cells"][0]["status"] == "fail" and s["cells"][0]["change"] == "newly broken"
    # A cell that cannot run at all (here: a bad kharness.toml) is an error, not a module failure.
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.c").write_text("int x;\n")
    (bad / "kharness.toml").write_text("[nonsense]\n")
    o = kharness("matrix", str(bad), "--targets", "x86_64", "--kernels", "6.1", "-o", str(tmp_path / "m2"),
                 json_out=False)
    assert o.rc == 2, o.stdout + o.stderr
    s = json.loads((tmp_path / "m2" / "summary.json").read_text())
    assert s["counts"]["error"] == 1 and s["counts"]["fail"] == 0


def test_a_failed_download_is_an_infrastructure_error_not_a_failure(tmp_path):
    """A mirror that cannot be reached (a closed loopback port) with an empty cache: the cell is an
    error of kind infrastructure, the matrix exits 2, and no module is blamed."""
    import os
    import sys

    env = dict(os.environ, KHARNESS_CACHE=str(tmp_path / "cache"), KHARNESS_PROGRESS="0",
               KHARNESS_DEBIAN_MIRROR="http://127.0.0.1:9/debian")
    p = subprocess.run([sys.executable, "-m", "kharness", "matrix", str(EXAMPLES / "hello"), "--targets", "x86_64",
                        "--kernels", "6.1", "-o", str(tmp_path / "mx")], capture_output=True, text=True,
                       cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    cell = json.loads((tmp_path / "mx" / "summary.json").read_text())["cells"][0]
    assert cell["status"] == "error" and "download failed" in cell["summary"], cell
    result = json.loads((tmp_path / "mx" / cell["files"]["result"]).read_text())
    assert result["error"]["kind"] == "infrastructure" and result["status"] == "error"
    junit = ET.parse(tmp_path / "mx" / "junit.xml").getroot()
    assert junit.find(".//error") is not None and junit.find(".//failure") is None


def test_fail_fast_stops_after_the_first_broken_cell(kharness, tmp_path):
    require_series("x86_64", "6.1", "6.12")
    out = tmp_path / "ff"
    o = kharness("matrix", str(FIXTURES / "init_enodev"), "--targets", "x86_64", "--kernels", "6.1,6.12",
                 "-j", "1", "--fail-fast", "-o", str(out), json_out=False)
    assert o.rc == 1, o.stdout + o.stderr
    cells = {c["id"]: c for c in json.loads((out / "summary.json").read_text())["cells"]}
    assert [c["status"] for c in cells.values()].count("fail") == 1
    assert [c["status"] for c in cells.values()].count("skipped") == 1
    skipped = next(c for c in cells.values() if c["status"] == "skipped")
    assert "--fail-fast" in skipped["summary"]
