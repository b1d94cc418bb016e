"""Under load: 2 parallel streams x 20 runs of passing and faulty modules share one cache and
never see each other's files, guests or results; afterwards no QEMU, run directory or held lock
is left behind."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT, RUN_LIMIT
from kharness.paths import cache_dir

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


def _one(stream: int, i: int, out: Path) -> dict:
    module, status, phase = MIX[(i + stream * 3) % len(MIX)]
    tag = f"s{stream}-i{i}"
    res = out / f"{tag}.json"
    argv = [sys.executable, "-m", "kharness", "run", str(FIXTURES / module), "--json", str(res), "-q",
            "--timeout", "120", "--boot-timeout", "600"]
    if module == "whoami":
        argv += ["--param", f"tag={tag}"]
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, KHARNESS_PROGRESS="0"))
    _, err = p.communicate(timeout=RUN_LIMIT)
    r = json.loads(res.read_text())
    return {"tag": tag, "module": module, "want": status, "phase": phase, "rc": p.returncode, "result": r,
            "pid": p.pid, "stderr": err[-2000:]}


def _stream(stream: int, out: Path) -> list[dict]:
    return [_one(stream, i, out) for i in range(ITERATIONS)]


def test_two_parallel_streams_of_mixed_runs_stay_apart(tmp_path):
    with ThreadPoolExecutor(2) as pool:
        runs = [r for f in [pool.submit(_stream, s, tmp_path) for s in (0, 1)] for r in f.result()]
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
    held = []
    for lock in cache_dir().rglob("*.lock"):
        try:
            f = open(lock, "r")       # (tests running beside this one may remove theirs meanwhile)
        except OSError:
            continue
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(f, fcntl.LOCK_UN)
            except BlockingIOError:
                held.append(lock)
    # Other tests of this session may hold a lock right now; none of these runs can.
    assert all(not any(run["module"] in str(h) for run in runs) for h in held), held
