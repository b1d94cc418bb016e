"""Ready snapshots for real: restored guests are fresh, on time, unique, and a damaged snapshot
is rebuilt, never used."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES

pytestmark = pytest.mark.vm


def _state(o) -> tuple[int, str]:
    out = next(c for c in o.result["checks"] if c["name"] == "clock and randomness")["stdout"].split()
    return int(out[0]), out[1]


@pytest.mark.parametrize("target", ["x86_64", "arm64"])
def test_two_restored_runs_cannot_see_each_other(kharness, target):
    runs = []
    for _ in range(2):
        o = kharness("run", str(FIXTURES / "snapstate"), "--target", target, "--kernel", "6.1",
                     "--boot-timeout", "600", "--timeout", "120")
        assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
        assert o.result["boot_mode"] == "snapshot", o.result["boot_mode_note"]
        runs.append(o)
    (t1, u1), (t2, u2) = _state(runs[0]), _state(runs[1])
    now = time.time()
    assert abs(t1 - now) < 600 and abs(t2 - now) < 600      # the guest clock is the host's, not the save's
    assert u1 != u2                                          # fresh randomness per run
    assert runs[0].result["image"]["snapshot"] == runs[1].result["image"]["snapshot"]


def test_cold_and_a_damaged_snapshot(kharness):
    o = kharness("run", str(EXAMPLES / "hello"), "--cold")
    assert o.rc == 0 and o.result["boot_mode"] == "cold" and o.result["boot_mode_note"] == "--cold"
    o = kharness("run", str(EXAMPLES / "hello"))
    assert o.rc == 0 and o.result["boot_mode"] == "snapshot"
    snap = Path(o.result["image"]["snapshot"])
    with open(snap, "r+b") as f:       # truncate it: a partial or damaged entry
        f.truncate(snap.stat().st_size // 2)
    o = kharness("run", str(EXAMPLES / "hello"))
    assert o.rc == 0 and o.result["boot_mode"] == "snapshot"
    meta = json.loads((snap.parent / "meta.json").read_text())
    assert snap.stat().st_size == meta["size"]          # saved again, not used damaged


def test_ppc64_restores_and_unloads(kharness):
    """The big-endian kernel kharness builds restores too, and its timers run on after the
    restore (with a periodic tick they did not: rmmod waited forever for an RCU grace period)."""
    for _ in range(2):
        o = kharness("run", str(EXAMPLES / "hello"), "--target", "ppc64", "--kernel", "6.1",
                     "--boot-timeout", "600", "--timeout", "60")
        assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
        assert o.result["boot_mode"] == "snapshot", o.result["boot_mode_note"]
        assert o.result["phases"][5]["status"] == "pass"
