"""Honest exit codes, with the real CLI and real failures (no VM boots: every case fails, or is
refused, before a guest would start; the cache is private to each test).

* An unexpected exception (here a real OSError: KHARNESS_CACHE names a regular file, so making the
  cache directory fails) is an infrastructure error: exit 2, one line, the traceback in the result
  JSON and under --verbose, never a traceback with exit 1.
* Output paths are checked before any work.
* A matrix cell that outlives its deadline is killed and reported, not waited for.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"
KHARNESS = [sys.executable, "-m", "kharness"]
LIMIT = 300   # none of these boots a guest: seconds are plenty; this bounds only a bug


def kh(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, KHARNESS_PROGRESS="0", **(env or {}))
    return subprocess.run([*KHARNESS, *args], capture_output=True, text=True, timeout=LIMIT, cwd=ROOT, env=full)


@pytest.fixture
def broken_cache(tmp_path) -> dict:
    """KHARNESS_CACHE naming a regular file: the first use of the cache raises FileExistsError."""
    f = tmp_path / "cache-is-a-file"
    f.write_text("not a directory\n")
    return {"KHARNESS_CACHE": str(f)}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_unexpected_exception_in_run_is_an_infrastructure_error(tmp_path, broken_cache):
    res = tmp_path / "result.json"
    p = kh("run", str(HELLO), "--json", str(res), "-q", env=broken_cache)
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert line.startswith("kharness: error: internal error: FileExistsError: [Errno 17] File exists: ")
    assert "run with --verbose for the traceback; please report it" in line
    assert "Traceback" not in p.stderr
    r = json.loads(res.read_text())     # the result is written all the same
    assert (r["status"], r["error"]["kind"]) == ("error", "infrastructure")
    assert line == f"kharness: error: {r['error']['message']}"
    assert r["traceback"].startswith("Traceback (most recent call last)")
    assert "in cache_dir" in r["traceback"] and r["traceback"].rstrip().splitlines()[-1].startswith("FileExistsError")


@pytest.mark.parametrize("where", ["after", "before"])
def test_verbose_prints_the_traceback(tmp_path, broken_cache, where):
    args = ["run", str(HELLO), "-q", "--verbose"] if where == "after" else ["--verbose", "run", str(HELLO), "-q"]
    p = kh(*args, env=broken_cache)
    assert p.returncode == 2
    assert "kharness: error: internal error: FileExistsError" in p.stderr
    assert "Traceback (most recent call last)" in p.stderr and "in cache_dir" in p.stderr


@pytest.mark.parametrize("args", [
    ("cache", "ls"), ("cache", "verify"), ("cache", "clean"),
    ("image", "build", "--target", "x86_64", "--kernel", "6.1"),
    ("kernel", "build", "--target", "ppc64", "--kernel", "6.1"),
])
def test_unexpected_exception_in_any_command_exits_2_with_one_line(broken_cache, args):
    p = kh(*args, env=broken_cache)
    assert p.returncode == 2, p.stderr
    assert one_line(p.stderr).startswith("kharness: error: internal error: FileExistsError")
    v = kh(*args, "--verbose", env=broken_cache)
    assert v.returncode == 2 and "Traceback (most recent call last)" in v.stderr


def test_matrix_cells_with_an_internal_error_are_errors_not_failures(tmp_path, broken_cache):
    out = tmp_path / "mx"
    p = kh("matrix", str(HELLO), "--targets", "x86_64", "--kernels", "6.1", "--out", str(out), env=broken_cache)
    assert p.returncode == 2, p.stdout + p.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"]["error"] == 1 and s["cells"][0]["summary"].startswith("internal error: FileExistsError")
    cell = json.loads((out / "cells" / "x86_64-6.1" / "result.json").read_text())
    assert cell["error"]["kind"] == "infrastructure" and "FileExistsError" in cell["traceback"]
    assert ET.parse(out / "junit.xml").getroot().find(".//error") is not None


# -- output paths, before any work --------------------------------------------------------------
@pytest.mark.parametrize("make,needle", [
    (lambda t: t, "is a directory"),
    (lambda t: t / "missing" / "r.json", "does not exist"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "r.json", "is not a directory"),
    (lambda t: Path("/proc/kharness-result.json"), "cannot write in /proc"),
    # A FIFO of its own, never /dev/null: without the check, the result's atomic rename replaces
    # whatever the path names, and a root test run would replace the host's /dev/null.
    (lambda t: os.mkfifo(t / "fifo") or t / "fifo", "is not a regular file"),
])
def test_run_refuses_an_unusable_json_path_before_any_work(tmp_path, make, needle):
    cache = tmp_path / "cache"     # made by the run's first step: its absence proves nothing ran
    path = make(tmp_path)
    p = kh("run", str(HELLO), "--json", str(path), "-q", env={"KHARNESS_CACHE": str(cache)})
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert line.startswith(f"kharness: error: --json {path}") and needle in line
    assert p.stdout == "" and not cache.exists()


def test_run_accepts_an_existing_result_file(tmp_path):
    """The refusal is not a false alarm: an existing regular file is replaced as before (here a
    usage error follows, written into it)."""
    res = tmp_path / "result.json"
    res.write_text("old")
    p = kh("run", str(tmp_path / "no-such-module"), "--json", str(res), "-q",
           env={"KHARNESS_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 2 and "module directory" in p.stderr
    assert json.loads(res.read_text())["error"]["kind"] == "usage"


@pytest.mark.parametrize("make,needle", [
    (lambda t: (t / "file").write_text("x") and t / "file", "exists and is not a directory"),
    (lambda t: (t / "o" / "junit.xml").mkdir(parents=True) or t / "o", "junit.xml exists and is not a regular file"),
    (lambda t: Path("/proc/kharness-matrix"), "cannot create it"),
])
def test_matrix_refuses_an_unusable_output_directory_before_any_work(tmp_path, make, needle):
    out = make(tmp_path)
    p = kh("matrix", str(HELLO), "--targets", "x86_64", "--kernels", "6.1", "--out", str(out),
           env={"KHARNESS_CACHE": str(tmp_path / "cache")})
    assert p.returncode == 2, p.stderr
    line = one_line(p.stderr)
    assert line.startswith(f"kharness: error: --out {out}") and needle in line
    assert not (tmp_path / "cache").exists() and not (out / "cells").exists()


# -- a matrix cell over its deadline ----------------------------------------------------------------
@pytest.fixture
def stalled_mirror():
    """A loopback 'mirror' that accepts, reads the request and never answers: the cell's
    `kharness run` waits on it far longer than the cell may take. ``closed`` is set once the
    client's end goes away, i.e. the cell's process is gone."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(LIMIT)
    closed, conns = threading.Event(), []

    def serve():
        try:
            c, _ = srv.accept()
        except OSError:
            return
        conns.append(c)
        c.settimeout(LIMIT)
        try:
            while c.recv(4096):
                pass
        except OSError:
            pass
        closed.set()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}", closed
    srv.close()
    for c in conns:
        c.close()


def test_a_matrix_cell_over_its_deadline_is_killed_and_reported(tmp_path, stalled_mirror):
    url, closed = stalled_mirror
    out = tmp_path / "mx"
    p = kh("matrix", str(HELLO), "--targets", "x86_64", "--kernels", "6.1", "--out", str(out), "--cell-timeout", "5",
           env={"KHARNESS_CACHE": str(tmp_path / "cache"), "KHARNESS_DEBIAN_MIRROR": url})
    assert p.returncode == 2, p.stdout + p.stderr
    assert closed.wait(LIMIT), "the cell's kharness run still holds its connection"
    s = json.loads((out / "summary.json").read_text())
    c = s["cells"][0]
    assert c["status"] == "error" and "did not finish within its deadline of 5s and was killed" in c["summary"]
    r = json.loads((out / "cells" / "x86_64-6.1" / "result.json").read_text())
    assert r["error"] == {"kind": "infrastructure", "message": c["summary"]}
    assert "exceeded its deadline of 5s" in (out / "cells" / "x86_64-6.1" / "output.log").read_text()
    assert ET.parse(out / "junit.xml").getroot().find(".//error") is not None
