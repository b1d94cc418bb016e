"""`kharness watch` for real: a save reruns the module (a broken edit fails at build, the fix
passes again), each run restoring the ready snapshot; --runs ends it with the last run's code."""

from __future__ import annotations

import os
import re
import shutil
import sys

import pexpect
import pytest

from conftest import EXAMPLES, ROOT, RUN_LIMIT

pytestmark = pytest.mark.vm


def _verdict(child) -> str:
    """The output of one run, up to the line that says it is watching again."""
    child.expect(r"run took [0-9.]+s \(([\w ]+)\); watching")
    return child.before + child.after


def test_watch_reruns_on_every_save(tmp_path):
    mod = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", mod)
    src = (mod / "hello.c").read_text()
    env = dict(os.environ, KHARNESS_PROGRESS="0", NO_COLOR="1", TERM="dumb", COLUMNS="160")
    child = pexpect.spawn(sys.executable, ["-m", "kharness", "watch", str(mod), "--runs", "3"], cwd=str(ROOT),
                          env=env, encoding="utf-8", timeout=RUN_LIMIT, dimensions=(50, 160))
    try:
        first = _verdict(child)
        assert re.search(r"PASS\s+\S*hello\s+on x86_64", first), first
        (mod / "hello.c").write_text(src + "\nint kh_broken(void) { return undeclared_thing; }\n")
        broken = _verdict(child)
        assert re.search(r"FAIL\s+\S*hello", broken) and "undeclared_thing" in broken, broken
        (mod / "hello.c").write_text(src)
        fixed = _verdict(child)
        assert re.search(r"PASS\s+\S*hello", fixed) and "(snapshot)" in fixed, fixed
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0          # the last run passed
