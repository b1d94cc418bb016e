"""`kharness guest up|down|ls` bookkeeping without a guest: names, the registry, forgetting guests
whose process is gone, stopping a process group, and `cache clean` leaving running guests alone.
The real thing (a booted Debian guest reached over SSH) is tests/integration/test_remote_board.py."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from kharness import cachectl, guestctl
from kharness.errors import UsageError

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))


def _register(name: str, pid: int) -> guestctl.GuestInfo:
    d = guestctl.guests_dir() / name
    d.mkdir()
    info = guestctl.GuestInfo(name, pid, "x86_64", "6.1.0-50-amd64", "bookworm", 2222, "root", "/k", "ssh-ed25519 A",
                              time.time(), time.time() + 60, str(d))
    (d / "guest.json").write_text(json.dumps(asdict(info)))
    return info


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "a b", "x" * 65, "$(reboot)"])
def test_a_bad_guest_name_is_refused(bad):
    with pytest.raises(UsageError, match="not usable"):
        guestctl.check_name(bad)


def test_a_guest_whose_process_is_gone_is_forgotten():
    p = subprocess.Popen(["true"])
    p.wait()
    info = _register("gone", p.pid)
    assert guestctl.listing() == []
    assert not (guestctl.guests_dir() / info.name).exists()


def test_a_running_guest_is_listed_and_down_stops_its_process_group():
    # A stand-in for `timeout ... qemu ...`: its argv names the guest's directory, as the real one does.
    d = guestctl.guests_dir() / "live"
    p = subprocess.Popen(["sh", "-c", 'sleep 600; : "$0"', str(d)], start_new_session=True)
    try:
        # Popen returns once exec is past its point of no return, a moment before the kernel has
        # the new argv in place (/proc/PID/cmdline reads empty meanwhile): wait for it.
        end = time.monotonic() + 10
        while str(d).encode() not in Path(f"/proc/{p.pid}/cmdline").read_bytes() and time.monotonic() < end:
            time.sleep(0.01)
        info = _register("live", p.pid)
        assert [g.name for g in guestctl.listing()] == ["live"]
        assert guestctl.down("live") == ["live"]
        assert p.wait(timeout=30) is not None
        assert not d.exists() and guestctl.listing() == []
    finally:
        if p.poll() is None:
            p.kill()
    with pytest.raises(UsageError, match="no guest named 'live'"):
        guestctl.down("live")
    assert info.address == "root@127.0.0.1:2222"


def test_a_reused_pid_is_not_taken_for_the_guest():
    """The process is alive but is not the guest (its argv does not name the guest's directory)."""
    p = subprocess.Popen(["sleep", "600"])
    try:
        _register("reused", p.pid)
        assert guestctl.listing() == []
    finally:
        p.kill()
        p.wait()


def test_cache_clean_leaves_running_guests_alone():
    (guestctl.guests_dir() / "g1").mkdir()
    assert all(kind != "guests" for kind, _ in cachectl._entries())


# --- guest up --user ----------------------------------------------------------------------------------

@pytest.mark.parametrize("good", ["pi", "_kh", "a", "kh-user_2", "x" * 32, "root"])
def test_a_login_name_is_taken_as_it_is(good):
    assert guestctl.check_user(good) == good


@pytest.mark.parametrize("bad", ["", "Pi", "1pi", "-pi", "pi.x", "pi x", "x" * 33, "$(reboot)", "pi;id", "pi\n",
                                 "p'i", "ünï"])
def test_a_bad_login_name_is_refused(bad):
    with pytest.raises(UsageError, match="not a usable login name"):
        guestctl.check_user(bad)
    with pytest.raises(UsageError):
        guestctl.add_user_command(bad)


def _tools(bin_dir, log):
    """Stand-ins for the guest's tools that record their argv, one word a line (a name in the wrong
    place, or split, shows)."""
    bin_dir.mkdir()
    for tool in ("useradd", "install", "visudo"):
        p = bin_dir / tool
        p.write_text(f'#!/bin/sh\necho "{tool}" >> {log}\nfor a; do echo "  $a" >> {log}; done\n')
        p.chmod(0o755)


def test_the_user_is_made_with_the_root_keys_and_passwordless_sudo(tmp_path):
    log = tmp_path / "log"
    _tools(tmp_path / "bin", log)
    sudoers = tmp_path / "sudoers.d" / "kharness"
    sudoers.parent.mkdir()
    cmd = guestctl.add_user_command("kh-user_1", home_base=str(tmp_path / "home"), sudoers=str(sudoers))
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, timeout=30)
    assert (p.returncode, p.stdout) == (0, "made\n"), p.stderr
    assert sudoers.read_text() == "kh-user_1 ALL=(ALL) NOPASSWD: ALL\n" and oct(sudoers.stat().st_mode & 0o777) == "0o440"
    calls = log.read_text().replace("visudo\n", "install\n").split("useradd\n")[1].split("install\n")
    # not locked ('*', not '!': sshd without PAM refuses a locked account), bash, the name last after --
    assert calls[0].split() == ["--create-home", "--home-dir", f"{tmp_path}/home/kh-user_1", "--shell", "/bin/bash",
                                "--user-group", "--password", "*", "--", "kh-user_1"]
    assert calls[2].split()[-2:] == ["/root/.ssh/authorized_keys", f"{tmp_path}/home/kh-user_1/.ssh/authorized_keys"]
    assert log.read_text().split("visudo\n")[1].split() == ["-cqf", f"{sudoers}.tmp"]


def test_a_name_the_guest_already_has_is_not_made_again(tmp_path):
    log = tmp_path / "log"
    _tools(tmp_path / "bin", log)
    cmd = guestctl.add_user_command("root", home_base=str(tmp_path / "home"), sudoers=str(tmp_path / "s"))
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True,
                       env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}, timeout=30)
    assert (p.returncode, p.stdout) == (0, "exists\n") and not log.exists() and not (tmp_path / "s").exists()


def test_guest_up_refuses_a_bad_user_before_anything_is_done(monkeypatch):
    from typer.testing import CliRunner

    from kharness import cli, plan

    monkeypatch.setattr(plan, "plan_guest", lambda *a, **k: pytest.fail("planned a guest for a bad --user"))
    r = CliRunner().invoke(cli.app, ["guest", "up", "x86_64", "--user", "pi;reboot"])
    assert r.exit_code == 2 and "not a usable login name" in r.output
