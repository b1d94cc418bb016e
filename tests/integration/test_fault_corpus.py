"""The fault corpus (tests/fixtures/modules): every way a module can misbehave is classified,
with the kernel's own report, within the run's timeout, the VM torn down and nothing left behind;
and kharness killed with SIGKILL leaves no QEMU behind, the next run cleaning up its directory."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES, ROOT

pytestmark = pytest.mark.vm


def _no_qemu_for(run_dir_fragment: str) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return not any("qemu-system" in line and run_dir_fragment in line for line in out.splitlines())


@pytest.mark.parametrize("module,phase,kinds,needle", [
    ("init_softlockup", "load", {"soft_lockup", "hang"}, "stuck in init_softlockup_init"),
    ("exit_hang", "unload", {"hang"}, "stuck in exit_hang_exit"),
    ("double_proc_remove", "unload", {"warning"}, "remove_proc_entry"),
    ("channel_kill", "load", {"channel_lost"}, "the command channel went silent during insmod channel_kill"),
    ("console_kill", "load", {"warning"}, "kernel reported warning"),
])
def test_faults_are_classified(kharness, module, phase, kinds, needle):
    o = kharness("run", str(FIXTURES / module), "--timeout", "40")
    assert o.rc == 1, (o.stdout, o.stderr)
    r = o.result
    assert r["status"] == "fail" and r["summary"].startswith(f"{phase}:") and needle in r["summary"], r["summary"]
    assert kinds <= {f["kind"] for f in r["findings"] if f.get("blocking")}
    # The kernel's own report (or, for a silenced channel, the console) is attached to each.
    assert all(f.get("report") for f in r["findings"] if f.get("blocking") and f["kind"] in kinds)


def test_a_module_that_kills_every_process_fails_insmod_without_a_kernel_report(kharness):
    """kill_processes SIGKILLs every user process but PID 1 (insmod among them): the kernel itself
    is fine and PID 1 still serves the command channel, so the verdict is insmod's death, and
    nothing is made up: no kernel report, no lost channel, and the module's own log is there."""
    o = kharness("run", str(FIXTURES / "kill_processes"), "--timeout", "40")
    assert o.rc == 1, (o.stdout, o.stderr)
    r = o.result
    assert r["status"] == "fail" and r["summary"].startswith("load: insmod kill_processes failed (exit 137)"), \
        r["summary"]
    assert [f for f in r["findings"] if f.get("blocking")] == [], r["findings"]
    assert re.search(r"\] kill_processes: killed [1-9][0-9]* processes$", r["dmesg"]["load"], re.M), r["dmesg"]["load"]
    assert [(p["name"], p["status"]) for p in r["phases"]][3:] == [("load", "fail"), ("check", "skipped"),
                                                                  ("unload", "skipped")]


def test_slow_but_correct_passes_with_an_adequate_timeout(kharness):
    o = kharness("run", str(FIXTURES / "slow_init"))          # its kharness.toml gives 40 s a step
    assert o.rc == 0, (o.stdout, o.stderr)
    assert o.result["phases"][3]["duration"] >= 8


def test_a_log_flood_keeps_the_harness_responsive_and_the_result_small(kharness):
    o = kharness("run", str(FIXTURES / "log_flood"), "--timeout", "240")
    assert o.rc == 0, (o.stdout, o.stderr)
    size = len(json.dumps(o.result))
    assert size < 1_000_000, size                               # 200,000 lines were logged
    assert "flood done" in o.result["dmesg"]["load"]            # the end of the flood is kept
    assert len(o.result["dmesg"]["load"]) <= 70_000             # capped (the kernel's ring holds ~1 MB)


def test_sigkill_leaves_no_qemu_and_the_next_run_cleans_up(kharness):
    env = dict(os.environ, KHARNESS_PROGRESS="0")
    p = subprocess.Popen([sys.executable, "-m", "kharness", "run", str(EXAMPLES / "hello"), "--cold"],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run_dir is None:   # wait until its guest exists
        dirs = list(Path(tempfile.gettempdir()).glob(f"kharness-run-{p.pid}-*"))
        if dirs and (dirs[0] / "qemu.stderr").exists():
            run_dir = dirs[0]
        time.sleep(0.1)
    assert run_dir is not None
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _no_qemu_for(run_dir.name):
        time.sleep(0.2)
    assert _no_qemu_for(run_dir.name)                         # QEMU died with its parent
    o = kharness("run", str(EXAMPLES / "hello"))
    assert o.rc == 0
    assert not run_dir.exists()                               # the next run reaped it
