"""Ready snapshots for real: restored guests are fresh, on time, unique, and a damaged snapshot
is rebuilt, never used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES

pytestmark = pytest.mark.vm


def _state(o) -> tuple[int, str]:
    out = next(c for c in o.result["checks"] if c["name"] == "clock and randomness")["stdout"].split()
    return int(out[0]), out[1]


@pytest.mark.parametrize("target", ["x86_64", "arm64", "ppc64le"])
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


@pytest.mark.parametrize("target", ["ppc64", "ppc64le"])
def test_pseries_restores_with_running_timers(kharness, target):
    """QEMU 7.2 does not restart a restored pseries guest's decrementer; kh-agent makes the kernel
    write it, so the restored guest's timers run: its first command sleeps (the timer probe) and
    rmmod's synchronize_rcu returns."""
    for _ in range(2):       # the first run may save the snapshot; the second restores it
        o = kharness("run", str(EXAMPLES / "hello"), "--target", target, "--kernel", "6.1", "--boot-timeout", "600")
        assert o.rc == 0, (o.stdout, o.stderr)
    assert o.result["boot_mode"] == "snapshot", o.result["boot_mode_note"]
    assert o.result["phases"][5]["status"] == "pass"


def test_a_restored_guest_whose_timers_stalled_is_replaced_by_a_boot(kharness):
    """The first command of a restored guest proves that its timers run (a 1 ms sleep); when it
    cannot answer in time, the run boots a guest instead (never blaming the module) and drops the
    bad snapshot. A stalled guest is stood in for by a probe that cannot finish within its limit
    (a 30 s sleep given 3 s): the guest, the restore and the fallback are real."""
    script = ("import sys\n"
              "from pathlib import Path\n"
              "from kharness.vm import snapshot\n"
              "snapshot.PROBE_TIMEOUT = 3\n"
              "from kharness import runner\n"
              "runner.RESTORED_CMD = 'sleep 30; ' + runner.RESTORED_CMD\n"
              "r = runner.run(runner.RunOptions(module_dir=Path(sys.argv[1])))\n"
              "print(r.status, r.boot_mode, r.boot_mode_note, sep='|')\n")
    kharness("run", str(EXAMPLES / "hello"))                   # the snapshot exists
    p = subprocess.run([sys.executable, "-c", script, str(EXAMPLES / "hello")], capture_output=True, text=True,
                       env=dict(os.environ, KHARNESS_PROGRESS="0"), timeout=2700)
    status, mode, note = (p.stdout.strip().split("|") + ["", "", ""])[:3]
    assert (status, mode) == ("pass", "cold"), p.stdout + p.stderr
    assert "did not finish within 3s" in note and "booted instead" in note, note
    o = kharness("run", str(EXAMPLES / "hello"))                 # saved anew, restored fine
    assert o.rc == 0 and o.result["boot_mode"] == "snapshot"
    assert o.result["boot_mode_note"] != note
