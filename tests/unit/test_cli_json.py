"""Machine-readable output: ``--json`` on the listing commands parses and says what the table
says; ``run --json -`` puts the result, and only the result, on stdout; tables fit an 80-column
terminal; ``run -v`` copies the guest's console to stderr as it arrives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kharness import ui
from kharness.cli import app
from kharness.targets import all_targets

ROOT = Path(__file__).resolve().parents[2]


def kh(*argv: str, columns: int = 80, **env: str):
    return CliRunner().invoke(app, list(argv), env={"COLUMNS": str(columns), **env})


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_targets_json_is_every_profile():
    r = kh("targets", "--json")
    assert r.exit_code == 0
    got = {t["name"]: t for t in json.loads(r.stdout)}
    assert set(got) == set(all_targets())
    x86 = got["x86_64"]
    assert x86["qemu"] == "qemu-system-x86_64" and x86["debian_arch"] == "amd64"
    assert x86["series"] == list(all_targets()["x86_64"].series)
    assert x86["source"].endswith("x86_64.toml")
    assert got["rpi2"]["dtb_fixups"] == [["/soc/serial@7e215040", "status", "okay"]]


def test_targets_table_fits_80_columns():
    r = kh("targets")
    assert r.exit_code == 0 and widest(r.stdout) <= 80
    for name in all_targets():
        assert f" {name} " in f" {r.stdout} ".replace("\n", " ")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    base = tmp_path / "cache"
    (base / "kernels" / "6.1.0-50-amd64-0123456789ab").mkdir(parents=True)
    (base / "kernels" / "6.1.0-50-amd64-0123456789ab" / "vmlinux").write_bytes(b"x" * 1000)
    (base / "kernels" / "6.1.0-50-amd64-0123456789ab.lock").write_text("")
    (base / "debs").mkdir()
    (base / "debs" / ("f" * 64 + "-linux-image-6.1.0-50-amd64_6.1.170-1_amd64.deb")).write_bytes(b"y" * 300)
    monkeypatch.setenv("KHARNESS_CACHE", str(base))
    return base


def test_cache_ls_json(cache):
    r = kh("cache", "ls", "--json", KHARNESS_CACHE=str(cache))
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["cache"] == str(cache)
    assert d["entries"] == [
        {"kind": "debs", "entry": "f" * 64 + "-linux-image-6.1.0-50-amd64_6.1.170-1_amd64.deb", "bytes": 300},
        {"kind": "kernels", "entry": "6.1.0-50-amd64-0123456789ab", "bytes": 1000}]
    assert d["total_bytes"] == 1300 and d["abandoned_staging"] == []


def test_cache_ls_table_fits_80_columns(cache):
    r = kh("cache", "ls", KHARNESS_CACHE=str(cache))
    assert r.exit_code == 0 and widest(r.stdout) <= 80
    assert "kernels" in r.stdout and "total 0.00 GB" in r.stdout


def test_run_json_dash_is_the_result_alone_on_stdout(tmp_path):
    """A run that stops before a boot (no such module directory) still has a result: on stdout,
    parseable as a whole, with the error line on stderr. A real process: what CI pipes."""
    p = subprocess.run([sys.executable, "-m", "kharness", "run", str(tmp_path / "nope"), "--json", "-"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, KHARNESS_CACHE=str(tmp_path / "cache")))
    assert p.returncode == 2
    result = json.loads(p.stdout)
    assert result["schema"] == "kharness/result/v1" and result["status"] == "error"
    assert p.stderr == f"kharness: error: module directory {tmp_path / 'nope'} does not exist\n"
    assert not (ROOT / "-").exists() and not (tmp_path / "-").exists()


def test_run_help_offers_dash_and_verbose():
    out = kh("run", "--help", columns=200).output
    line = next(line for line in out.splitlines() if "--verbose" in line)
    assert line.split()[1:3] == ["--verbose", "-v"] and "Stream the guest's kernel console" in line
    assert "`-`" in out and "stdout" in out


def test_run_verbose_copies_the_guest_console_to_stderr(tmp_path, monkeypatch):
    from kharness.vm.console import ConsoleLog

    r_err, w_err = os.pipe()
    sink = os.fdopen(w_err, "wb")
    monkeypatch.setattr(ui, "_guest_console", sink)
    rfd, wfd = os.pipe()
    con = ConsoleLog(rfd, os.open(os.devnull, os.O_WRONLY), tmp_path / "console.log")
    try:
        os.write(wfd, b"[    0.000000] Linux version 6.1.0\r\n")
        deadline = time.monotonic() + 30
        got = b""
        os.set_blocking(r_err, False)
        while b"Linux version" not in got and time.monotonic() < deadline:
            try:
                got += os.read(r_err, 4096)
            except BlockingIOError:
                time.sleep(0.01)
        assert got == b"[    0.000000] Linux version 6.1.0\r\n"
    finally:
        con.close()
        sink.close()
        for fd in (r_err, rfd, wfd):
            os.close(fd)
    assert (tmp_path / "console.log").read_bytes() == b"[    0.000000] Linux version 6.1.0\r\n"


def test_without_verbose_nothing_is_copied():
    ui.stream_guest_console(False)
    assert ui.guest_console_stream() is None
    ui.stream_guest_console(True)
    try:
        assert ui.guest_console_stream() is sys.stderr.buffer
    finally:
        ui.stream_guest_console(False)
