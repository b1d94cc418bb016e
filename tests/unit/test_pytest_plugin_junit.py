"""The pytest plugin puts guest text (dmesg, the console) and guest facts (release, accelerator) into
the JUnit XML: control characters there (a console's colour sequences, NULs) must still give a
well-formed file. The plugin hands them to pytest's junitxml, which escapes them; this proves the
path, with a stand-in session (no guest) holding the nasty text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

pytest_plugins = ["pytester"]

INNER = r'''
from types import SimpleNamespace

NASTY = "\x1b[31mOops\x1b[0m \x00nul \x07bell \x08bs"


class FakeSession:
    result = SimpleNamespace(dmesg={"check": "[ 1.0] " + NASTY + "\n"})

    def health(self):
        return []

    def console_tail(self):
        return "console " + NASTY


def test_guest_text_in_the_report(request):
    request.node._kh_session = FakeSession()
    request.node.user_properties.append(("kh_kernel", "6.1.0-50-amd64" + NASTY))
    assert False, "the check failed: " + NASTY
'''


def test_guest_text_in_junit_stays_well_formed(pytester):
    pytester.makepyfile(test_inner=INNER)
    r = pytester.runpytest_inprocess("--junitxml", "j.xml", "-p", "no:cacheprovider")
    r.assert_outcomes(failed=1)
    root = ET.parse(pytester.path / "j.xml").getroot()      # raises if not well-formed
    failure = root.find(".//testcase/failure")
    # The plugin's sections (dmesg and console) made it into the failure body, escaped.
    assert "kharness dmesg" in failure.text and "kharness console" in failure.text
    assert "Oops" in failure.text and "\x1b" not in failure.text and "\x00" not in failure.text
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["kh_kernel"].startswith("6.1.0-50-amd64") and "\x1b" not in props["kh_kernel"]
