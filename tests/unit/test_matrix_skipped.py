"""A matrix cell whose run was skipped (its module's dkms.conf excludes the target or kernel) is a
skipped cell: counted as skipped, a JUnit <skipped>, no failure, and --fail-fast goes on."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from kharness.cells import Cell
from kharness.matrix import execute, report


class _Supervisor:
    """Writes the result `kharness run --json` would have written, with ``status``."""

    def __init__(self, status: str):
        self.status = status
        self.ran: list[str] = []

    def run(self, argv, log, deadline, env=None):
        path = Path(argv[argv.index("--json") + 1])
        self.ran.append(argv[argv.index("--target") + 1])
        path.write_text(json.dumps({"status": self.status, "summary": f"{self.status}: why", "duration": 0.5,
                                    "kernel": {"release": "6.1.0-50-powerpc64"}}))
        return 0


def test_a_skipped_run_is_a_skipped_cell(tmp_path):
    cell = Cell("ppc64", "6.1")
    r = execute.run_cell(tmp_path, cell, tmp_path / "out", [], 60, _Supervisor("skipped"))
    assert (r.status, r.summary) == ("skipped", "skipped: why")
    s = report.summary(str(tmp_path), [r], 1.0, {})
    assert s["counts"]["skipped"] == 1 and s["counts"]["fail"] == s["counts"]["error"] == 0
    report.junit([r], tmp_path / "junit.xml")
    case = ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase")
    assert case.find("skipped") is not None and case.find("failure") is None


def test_an_unknown_status_is_still_an_error(tmp_path):
    """The test above can fail: only the statuses a result may hold are taken as they are."""
    r = execute.run_cell(tmp_path, Cell("x86_64", "6.1"), tmp_path / "out", [], 60, _Supervisor("maybe"))
    assert r.status == "error"
