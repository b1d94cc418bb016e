"""Matrix cells have a deadline: a cell that outlives it is killed with everything it started and
reported as an infrastructure error. The cell command is a real process tree (sh and sleeps, one of
them escaped into a session of its own, as a build tool may); only `kharness run` is replaced."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kharness.matrix import execute
from kharness.matrix.execute import BUILD_ALLOWANCE, cell_deadline, run_all, run_cell
from kharness.matrix.plan import Cell
from kharness.matrix.supervise import Supervisor, descendants, kill_tree

# sh starts a sleep in its group and one in a new session (out of the group's reach), writes their
# pids, then waits: a wedged cell with a QEMU and a compiler below it.
TREE = ("sleep 300 & echo $! > {pids}; setsid sleep 300 & echo $! >> {pids}; "
        "echo started; wait")


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as dead: it runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _gone(pids: list[int], limit: float = 30.0) -> bool:
    """Whether every pid is dead; death after SIGKILL is asynchronous, so look a while (bounded)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _pids(path: Path, n: int = 2) -> list[int]:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if path.exists():
            got = [int(x) for x in path.read_text().split()]
            if len(got) == n:
                return got
        time.sleep(0.05)
    raise AssertionError(f"{path} never listed {n} pids")


def test_a_cell_over_its_deadline_is_killed_with_its_whole_tree(tmp_path):
    pids = tmp_path / "pids"
    with open(tmp_path / "log", "w") as log:
        rc = Supervisor(grace=1).run(["sh", "-c", TREE.format(pids=pids)], log, deadline=2)
    assert rc is None
    kids = _pids(pids)
    assert _gone(kids), f"still running: {[p for p in kids if _alive(p)]}"


def test_a_cell_within_its_deadline_returns_its_exit_code(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert Supervisor().run([sys.executable, "-c", "print('hi'); raise SystemExit(3)"], log, 600) == 3
    assert (tmp_path / "log").read_text() == "hi\n"


def test_descendants_sees_a_process_that_left_the_group(tmp_path):
    pids = tmp_path / "pids"
    p = subprocess.Popen(["sh", "-c", TREE.format(pids=pids)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        kids = _pids(pids)
        assert set(kids) <= set(descendants(p.pid))
    finally:
        kill_tree(p, grace=1)
    assert _gone(kids)


def test_run_cell_reports_a_timed_out_cell_as_an_infrastructure_error(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setattr(execute, "cell_argv", lambda *a: ["sh", "-c", TREE.format(pids=pids)])
    cell = Cell("x86_64", "6.1")
    d = tmp_path / "out" / "cells" / cell.id
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({"status": "pass"}))   # a previous matrix's: not this one's
    r = run_cell(tmp_path / "mod", cell, tmp_path / "out", [], deadline=2)
    assert r.status == "error"
    assert "did not finish within its deadline of 2s and was killed" in r.summary
    res = json.loads((d / "result.json").read_text())
    assert (res["status"], res["error"]["kind"]) == ("error", "infrastructure")
    assert res["error"]["message"] == r.summary and res["target"] == "x86_64" and res["kernel_wanted"] == "6.1"
    log = (d / "output.log").read_text()
    assert log.startswith("started\n") and "exceeded its deadline of 2s" in log
    assert _gone(_pids(pids))


def test_run_all_bounds_every_cell(tmp_path, monkeypatch):
    pids = {c: tmp_path / f"pids-{c}" for c in ("6.1", "6.12")}
    monkeypatch.setattr(execute, "cell_argv",
                        lambda m, cell, res, extra: ["sh", "-c", TREE.format(pids=pids[cell.kernel])])
    cells = [Cell("x86_64", "6.1"), Cell("x86_64", "6.12")]
    results = run_all(tmp_path / "mod", cells, tmp_path / "out", 2, False, [], deadline=2)
    assert [r.status for r in results] == ["error", "error"]
    assert all("deadline" in r.summary for r in results)
    assert _gone([p for f in pids.values() for p in _pids(f)])


@pytest.mark.parametrize("step", [None, 30.0, 600.0])
def test_default_deadline_leaves_room_for_a_kernel_build_and_every_step(step):
    d = cell_deadline(step)
    assert d > BUILD_ALLOWANCE + 2 * 300 + 20 * (step or 60)
    assert cell_deadline(2 * (step or 60)) > d


def test_matrix_cli_takes_cell_timeout():
    from typer.testing import CliRunner

    from kharness.cli import app
    out = CliRunner().invoke(app, ["matrix", "--help"], env={"COLUMNS": "200"}).output
    assert "--cell-timeout" in out
