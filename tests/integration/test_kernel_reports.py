"""Kernel reports the scanner used to miss (issue 13, item 11), end to end on a real x86_64 6.1
kernel: the fixture makes the kernel print the report, and the run fails for it (or not)."""

from __future__ import annotations

from conftest import FIXTURES


def test_list_del_corruption_fails_the_load_with_its_own_line_as_headline(kharness):
    o = kharness("run", str(FIXTURES / "list_corrupt"), "--kernel", "6.1")
    assert o.rc == 1, (o.stdout, o.stderr)
    bug = next(f for f in o.result["findings"] if f["kind"] == "bug")
    assert bug["blocking"] and bug["module"] == "list_corrupt" and bug["phase"] == "load"
    assert bug["summary"].startswith("list_del corruption, ") and "LIST_POISON1" in bug["summary"]
    first, second = bug["report"].splitlines()[:2]
    assert "list_del corruption, " in first and "[ cut here ]" in second
    assert o.phase("load")["message"].startswith("kernel reported bug during insmod list_corrupt: list_del corruption")


def test_the_modules_failed_allocation_fails_the_load(kharness):
    o = kharness("run", str(FIXTURES / "alloc_fail"), "--kernel", "6.1")
    assert o.rc == 1, (o.stdout, o.stderr)
    [f] = [f for f in o.result["findings"] if f["kind"] == "alloc_failure"]
    assert f["blocking"] and f["module"] == "alloc_fail" and f["phase"] == "load"
    assert "page allocation failure: order:10" in f["summary"]
    assert o.phase("load")["message"].startswith("kernel reported alloc_failure: insmod: page allocation failure")
