"""Under load: 2 parallel streams x 20 runs of passing and faulty modules share one cache and
never see each other's files, guests or results; afterwards no QEMU, run directory or held lock
is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, RUN_LIMIT

pytestmark = pytest.mark.vm

ITERATIONS = 20
# (module, expected status, the phase a failure names)
MIX = [
    ("whoami", "pass", None),
    ("init_warn", "fail", "load"),
    ("whoami", "pass", None),
    ("init_enodev", "fail", "load"),
    ("exit_bug", "fail", "unload"),
    ("build_error", "fail", "build"),
    ("init_oops", "fail", "load"),
]


class _Streams:
    """The runs of both streams, stoppable: when the test ends early (a failed run, its time limit),
    no new run starts and the live ones are killed, so the pool's threads end with the test."""

    def __init__(self, out: Path):
        self.out = out
        self.lock = threading.Lock()
        self.stopped = False
        self.live: set[subprocess.Popen] = set()

    def one(self, stream: int, i: int) -> dict:
        module, status, phase = MIX[(i + stream * 3) % len(MIX)]
        tag = f"s{stream}-i{i}"
        res = self.out / f"{tag}.json"
        argv = [sys.executable, "-m", "kharness", "run", str(FIXTURES / module), "--json", str(res), "-q",
                "--timeout", "120", "--boot-timeout", "600"]
        if module == "whoami":
            argv += ["--param", f"tag={tag}"]
        with self.lock:
            if self.stopped:
                raise RuntimeError("stopped")
            p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=dict(os.environ, KHARNESS_PROGRESS="0"))
            self.live.add(p)
        try:
            _, err = p.communicate(timeout=RUN_LIMIT)
        finally:
            p.kill()          # a no-op once it has exited
            with self.lock:
                self.live.discard(p)
        r = json.loads(res.read_text())
        return {"tag": tag, "module": module, "want": status, "phase": phase, "rc": p.returncode, "result": r,
                "pid": p.pid, "stderr": err[-2000:]}

    def stream(self, stream: int) -> list[dict]:
        return [self.one(stream, i) for i in range(ITERATIONS)]

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            for p in self.live:
                p.kill()


def flocks_left_by(pids: set[int]) -> list[str]:
    """The flock(2) locks still held that one of ``pids`` took, after all of them have exited.

    /proc/locks names the process that took each lock; the kernel drops a process's locks when it
    exits, so one that outlives it is held through an open file a descendant inherited (a QEMU or
    compiler holding a cache entry's lock, which every other run would then wait on). A pid that
    exists again was reused by an unrelated process: skipped."""
    left = []
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's line reads "1: -> FLOCK ..."
        if len(f) > 4 and f[1] == "FLOCK" and f[4].isdigit() and int(f[4]) in pids \
                and not Path(f"/proc/{f[4]}").exists():
            left.append(line)
    return left


def test_two_parallel_streams_of_mixed_runs_stay_apart(tmp_path):
    streams = _Streams(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        try:
            runs = [r for f in [pool.submit(streams.stream, s) for s in (0, 1)] for r in f.result()]
        finally:
            streams.stop()
    assert len(runs) == 2 * ITERATIONS
    for run in runs:
        r = run["result"]
        assert r["status"] == run["want"], (run["tag"], run["module"], r["summary"], run["stderr"])
        assert run["rc"] == (0 if run["want"] == "pass" else 1), run["tag"]
        assert r["module_dir"].endswith(f"/{run['module']}"), (run["tag"], r["module_dir"])
        if run["phase"]:
            assert r["summary"].startswith(run["phase"] + ":"), (run["tag"], r["summary"])
        if run["module"] == "whoami":
            # The guest this run talked to was its own: it saw its own tag and nobody else's.
            assert r["params"]["whoami"]["tag"] == run["tag"]
            assert [c["status"] for c in r["checks"]] == ["pass", "pass"], (run["tag"], r["checks"])
            assert f"whoami: tag={run['tag']}" in r["dmesg"]["load"]
            others = [x["tag"] for x in runs if x["tag"] != run["tag"]]
            assert not any(f"tag={o}\n" in "".join(r["dmesg"].values()) for o in others)
    # Nothing outlives the runs: no QEMU of a kharness run, no run directory, no lock held.
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    pids = {run["pid"] for run in runs}
    leftovers = [line for line in ps.splitlines() if "qemu-system" in line
                 and any(f"kharness-run-{p}-" in line for p in pids)]
    assert leftovers == []
    run_dirs = [d for d in Path(tempfile.gettempdir()).glob("kharness-run-*")
                if any(d.name.startswith(f"kharness-run-{p}-") for p in pids)]
    assert run_dirs == []
    assert flocks_left_by(pids) == []


def test_the_lock_check_sees_a_lock_that_outlives_its_process(tmp_path):
    """flocks_left_by can fail: a process that takes a lock, hands the open file to a child and
    exits is reported, and no longer once that child is gone."""
    script = ("import fcntl, os, subprocess, sys\n"
              "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
              "fcntl.flock(fd, fcntl.LOCK_EX)\n"
              "print(subprocess.Popen(['sleep', '300'], pass_fds=[fd], stdout=subprocess.DEVNULL).pid)\n")
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "x.lock")], stdout=subprocess.PIPE, text=True)
    child = int(p.communicate(timeout=60)[0])
    try:
        assert p.returncode == 0
        assert len(flocks_left_by({p.pid})) == 1
    finally:
        os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while flocks_left_by({p.pid}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert flocks_left_by({p.pid}) == []
