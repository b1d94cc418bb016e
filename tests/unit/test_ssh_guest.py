"""The SSH guest against a real SSH server (paramiko's server side on 127.0.0.1, commands run on
this host in sessions of their own, as sshd runs them): commands, deadlines, a dropped connection,
connecting to an sshd that is not up yet, authentication, files, the kernel-log stream, cleanup."""

from __future__ import annotations

import inspect
import os
import socket
import stat
import threading
import time
from pathlib import Path

import paramiko
import pytest
from bounded import bounded
from ssh_server import Keys, SshServer, public_line, sandbox_guest

from kharness.errors import InfraError, UsageError
from kharness.guest import ConsoleSideChannel, Guest
from kharness.vm.errors import CommandTimeout, GuestDied
from kharness.vm.ssh import HostKeys, SshAddress, SshGuest

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


@pytest.fixture
def bin_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    return d


@pytest.fixture
def server(keys, bin_dir):
    with SshServer(keys.host, [keys.client], bin_dir=bin_dir) as s:
        yield s


def _guest(server, keys, tmp_path, user="root", **kw) -> SshGuest:
    kw.setdefault("identity", keys.identity)
    g = SshGuest(SshAddress(user, "127.0.0.1", server.port), host_keys=HostKeys(pinned=public_line(keys.host)),
                 use_agent=False, **kw)
    return sandbox_guest(g, tmp_path)


@pytest.fixture
def guest(server, keys, tmp_path):
    g = _guest(server, keys, tmp_path)
    g.connect(20)
    yield g
    g.close()


def _script(path: Path, text: str) -> None:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)


def _until(cond, limit: float = 30.0) -> bool:
    """Poll ``cond`` until true (False past ``limit``: the assertion then names what never happened)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"   # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return True


# --- the protocol -------------------------------------------------------------------------------------

def test_it_implements_the_guest_protocol_with_its_signatures(server, keys, tmp_path):
    g = _guest(server, keys, tmp_path)
    assert isinstance(g, Guest) and not isinstance(g, ConsoleSideChannel)
    for name in (n for n in vars(Guest) if not n.startswith("_") and callable(getattr(Guest, n))):
        want, got = inspect.signature(getattr(Guest, name)), inspect.signature(getattr(SshGuest, name))
        assert list(want.parameters) == list(got.parameters), name
        assert [p.default for p in want.parameters.values()] == [p.default for p in got.parameters.values()], name
    assert g.console_text() == "" and g.release is None and g.boot_seconds is None
    g.close()
    g.close()


# --- commands -----------------------------------------------------------------------------------------

def test_run_gives_exact_outputs_and_status(guest, server):
    r = guest.run("printf 'a\\nb'; printf 'it'\"'\"'s \\n' >&2; exit 3", 10)
    assert (r.rc, r.stdout, r.stderr) == (3, "a\nb", "it's \n")
    assert (r.stdout_size, r.stderr_size, r.truncated) == (3, 6, False)
    assert server.commands[-1].startswith("sh -c ")   # root: no sudo


def test_run_decodes_as_the_qemu_channel_does(guest):
    r = guest.run("printf 'caf\\303\\251 \\377\\n'", 10)
    assert r.stdout == b"caf\xc3\xa9 \xff\n".decode("utf-8", "replace")
    assert r.stdout_size == 8


def test_commands_run_in_root_with_the_agent_directory_first_in_path(guest):
    guest.install_agent(b"#!/bin/sh\necho agent \"$@\"\n", 10)
    guest.sessions = False   # (this stand-in agent cannot serve a command session: see below)
    r = guest.run("pwd; kh-agent one 'two words'", 10)
    assert r.stdout == f"/\nagent one two words\n"
    assert guest.run("echo $PATH", 10).stdout.startswith(f"{guest.remote_dir}/.bin:")


def test_stdin_is_delivered_whole_then_eof(guest):
    data = os.urandom(3 << 20)   # more than the channel's window: written as the channel takes it
    r = guest.run("wc -c; echo done >&2", 60, stdin=data)
    assert (r.rc, r.stdout.strip(), r.stderr) == (0, str(len(data)), "done\n")
    assert guest.run("cat", 10).stdout == ""   # no stdin: EOF at once


def test_a_command_that_writes_before_reading_does_not_deadlock(guest):
    r = guest.run("head -c 3000000 /dev/zero | tr '\\0' x; wc -c", 60, stdin=b"y" * (3 << 20))
    assert r.stdout_size == 3000000 + len(f"{3 << 20}\n")


def test_outputs_are_capped_like_the_qemu_channels(guest):
    r = guest.run("head -c 1200000 /dev/zero", 30)
    assert len(r.stdout) == 1 << 20 and r.stdout_size == 1200000 and r.truncated


def test_a_killed_command_reports_its_signal_in_the_status(guest):
    assert guest.run("kill -9 $$", 10).rc == 137


def test_a_command_past_its_deadline_times_out_and_is_killed(guest, tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandTimeout) as e:
        guest.run(f"echo $$ > {pidfile}; exec sleep 1000", 1)
    assert "within 1s" in str(e.value)
    pid = int(pidfile.read_text())
    assert _until(lambda: _gone(pid)), "the timed-out command is still running"
    assert guest.run("echo still usable", 10).stdout == "still usable\n"


def test_a_background_child_of_a_timed_out_command_is_killed_too(guest, tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(CommandTimeout):
        guest.run(f"sleep 1000 & echo $! > {pidfile}; wait", 1)
    pid = int(pidfile.read_text())
    assert _until(lambda: _gone(pid))


def test_the_connection_dropping_mid_command_is_guest_died(guest, server):
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(bounded(lambda: guest.run("sleep 1000", 60), 60)))
    t.start()
    assert server.exec_started.wait(30)
    server.drop_connections()
    t.join(60)
    assert isinstance(box.get("error"), GuestDied), box
    assert "dropped" in str(box["error"])
    with pytest.raises(GuestDied):
        guest.run("true", 10)
    guest.close()   # nothing to clean up on a dead connection: never raises


# --- connecting -----------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_retries_until_sshd_listens(keys, tmp_path):
    port = _free_port()
    g = SshGuest(SshAddress("root", "127.0.0.1", port), identity=keys.identity,
                 host_keys=HostKeys(pinned=public_line(keys.host)), use_agent=False, cleanup=False)
    started: list[SshServer] = []

    def later():   # sshd comes up once the guest has been refused at least twice
        if _until(lambda: g.attempts >= 2):
            started.append(SshServer(keys.host, [keys.client], port=port))

    t = threading.Thread(target=later, daemon=True)
    t.start()
    try:
        g.connect(60)
        # (the second attempt may already find it: the thread starts it as that attempt begins)
        assert g.attempts >= 2 and g.run("echo up", 10).stdout == "up\n"
        assert g.boot_seconds is not None and g.boot_seconds > 0
    finally:
        t.join(60)
        g.close()
        for s in started:
            s.stop()


def test_connect_retries_while_connections_close_before_the_banner(keys, tmp_path):
    # QEMU's user-mode port forward accepts and closes at once while the guest's sshd is not up.
    with SshServer(keys.host, [keys.client], reject_first=3) as s:
        g = SshGuest(SshAddress("root", "127.0.0.1", s.port), identity=keys.identity,
                     host_keys=HostKeys(pinned=public_line(keys.host)), use_agent=False, cleanup=False)
        g.connect(60)
        assert s.connections == 4 and g.attempts == 4
        g.close()


def test_connect_gives_up_at_its_deadline_with_one_line(keys):
    g = SshGuest(SshAddress("root", "127.0.0.1", _free_port()), identity=keys.identity, use_agent=False)
    with pytest.raises(InfraError) as e:
        g.connect(0.5)
    assert "did not answer SSH within 0.5s" in str(e.value) and "refused" in str(e.value).lower()
    assert "\n" not in str(e.value)


def test_a_key_the_server_does_not_accept_is_one_clear_error(server, keys, tmp_path):
    other = tmp_path / "other"
    paramiko.ECDSAKey.generate().write_private_key_file(str(other))
    g = _guest(server, keys, tmp_path, identity=other)
    with pytest.raises(InfraError) as e:
        g.connect(20)
    msg = str(e.value)
    assert f"refused the key {other}" in msg and "authorized_keys" in msg and "\n" not in msg
    assert g.attempts == 1   # no retrying a refusal


def test_authentication_that_outlasts_an_attempt_is_slowness_not_refusal(keys, tmp_path, monkeypatch):
    # An emulated POWER guest's sshd took longer than one attempt's deadline to check the key:
    # paramiko says "Authentication timeout." That is tried again, not reported as a refused key.
    import kharness.vm.ssh as ssh

    monkeypatch.setattr(ssh, "HANDSHAKE_TIMEOUT", 0.5)
    with SshServer(keys.host, [keys.client], slow_auth_first=2.0) as s:
        g = SshGuest(SshAddress("root", "127.0.0.1", s.port), identity=keys.identity,
                     host_keys=HostKeys(pinned=public_line(keys.host)), use_agent=False)
        try:
            g.connect(20)
            assert g.attempts >= 2 and g.run_exec("echo ok", 10).stdout == "ok\n"
        finally:
            g.close()


def test_no_key_at_all_is_one_clear_error(server, keys, tmp_path):
    g = _guest(server, keys, tmp_path, identity=None)
    with pytest.raises(InfraError, match="refused no key"):
        g.connect(20)


def test_any_key_type_paramiko_loads(keys, tmp_path):
    rsa = paramiko.RSAKey.generate(2048)
    rsa.write_private_key_file(str(tmp_path / "id_rsa"))
    with SshServer(keys.host, [rsa]) as s:
        g = SshGuest(SshAddress("root", "127.0.0.1", s.port), identity=tmp_path / "id_rsa",
                     host_keys=HostKeys(pinned=public_line(keys.host)), use_agent=False, cleanup=False)
        g.connect(20)
        assert g.run("echo rsa", 10).stdout == "rsa\n"
        g.close()


@pytest.mark.parametrize("what", ["missing", "passphrase", "garbage"])
def test_a_bad_identity_file_is_a_usage_error(tmp_path, what):
    path = tmp_path / "id"
    if what == "passphrase":
        paramiko.ECDSAKey.generate().write_private_key_file(str(path), password="secret")
    elif what == "garbage":
        path.write_text("not a key\n")
    with pytest.raises(UsageError) as e:
        SshGuest(SshAddress("root", "127.0.0.1", 22), identity=path)
    assert "\n" not in str(e.value)


def test_reachable_reads_a_banner(keys, server):
    g = SshGuest(SshAddress("root", "127.0.0.1", server.port))
    assert g.reachable(10)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)   # accepts (the kernel does) but never says SSH-
    try:
        assert not SshGuest(SshAddress("root", "127.0.0.1", silent.getsockname()[1])).reachable(0.3)
    finally:
        silent.close()
    server.stop()
    assert not g.reachable(5)


# --- files and cleanup ----------------------------------------------------------------------------------

def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_put_file_over_sftp_makes_the_parents(guest):
    kh = Path(guest.remote_dir)
    guest.put_file(f"{kh}/mods/sub/m.ko", b"\x7fELF" + bytes(range(256)) * 1000, 10)
    assert (kh / "mods/sub/m.ko").read_bytes() == b"\x7fELF" + bytes(range(256)) * 1000
    assert _mode(kh / "mods/sub/m.ko") == 0o644
    guest.put_file(f"{kh}/mods/sub/m.ko", b"shorter", 10)   # an existing file is replaced
    assert (kh / "mods/sub/m.ko").read_bytes() == b"shorter"
    assert (kh / ".kharness").exists()


def test_install_agent_and_cleanup_remove_exactly_what_kharness_put(guest, tmp_path):
    kh = Path(guest.remote_dir)
    tmp = tmp_path / "tmp"
    (tmp / ".kh.dmesg.cursor.health").write_text("1")
    (tmp / "keep").write_text("the user's")
    guest.install_agent(b"#!/bin/sh\n", 10)
    assert _mode(kh / ".bin/kh-agent") == 0o755
    guest.close()
    assert not kh.exists() and not (tmp / ".kh.dmesg.cursor.health").exists()
    assert (tmp / "keep").read_text() == "the user's"


def test_a_kh_directory_kharness_did_not_make_is_refused_and_kept(guest):
    kh = Path(guest.remote_dir)
    kh.mkdir()
    (kh / "mine").write_text("the user's")
    with pytest.raises(InfraError) as e:
        guest.install_agent(b"#!/bin/sh\n", 10)
    assert "kharness did not make it" in str(e.value)
    guest.close()
    assert (kh / "mine").read_text() == "the user's"


def test_cleanup_is_skipped_when_not_asked(server, keys, tmp_path):
    g = _guest(server, keys, tmp_path, cleanup=False)
    g.connect(20)
    g.install_agent(b"#!/bin/sh\n", 10)
    g.close()
    assert (tmp_path / "kh" / ".bin" / "kh-agent").exists()


def test_probe(guest):
    facts = guest.probe(10)
    assert facts.release == os.uname().release and facts.machine == os.uname().machine
    assert facts.endian == __import__("sys").byteorder and facts.bits in (32, 64)
    assert guest.release == facts.release


# --- sudo for a user other than root -------------------------------------------------------------------

def test_a_user_other_than_root_runs_through_sudo_n(server, keys, tmp_path, bin_dir):
    # A stand-in sudo that, like a real one on a board without a resolvable name, talks first.
    _script(bin_dir / "sudo", '[ "$1" = -n ] || exit 99; shift\n'
                              'echo "sudo: unable to resolve host board: Name or service not known" >&2\n'
                              'exec "$@"\n')
    g = _guest(server, keys, tmp_path, user="pi")
    g.connect(20)
    try:
        r = g.run("echo out; echo err >&2", 10)
        assert (r.rc, r.stdout, r.stderr) == (0, "out\n", "err\n")
        assert server.commands[-1].startswith("sudo -n sh -c ")
        g.put_file(f"{g.remote_dir}/x/f", b"via sudo", 10)   # no SFTP: it would write as pi
        assert (tmp_path / "kh/x/f").read_bytes() == b"via sudo" and _mode(tmp_path / "kh/x/f") == 0o644
        g.install_agent(b"#!/bin/sh\n", 10)
        assert _mode(tmp_path / "kh/.bin/kh-agent") == 0o755
    finally:
        g.close()
    assert not (tmp_path / "kh").exists()


def _pass_through_sudo(bin_dir):
    _script(bin_dir / "sudo", '[ "$1" = -n ] || exit 99; shift\nexec "$@"\n')


def test_as_another_user_a_running_program_is_replaced_whole(server, keys, tmp_path, bin_dir):
    """A file goes beside its place and is renamed into it: kh-agent can be replaced while it runs
    (a write into it would fail with ETXTBSY), and a reader never sees half of it."""
    import subprocess
    import shutil

    _pass_through_sudo(bin_dir)
    g = _guest(server, keys, tmp_path, user="pi")
    g.connect(20)
    prog = tmp_path / "kh/.bin/prog"
    try:
        g.put_file(str(prog), Path(shutil.which("sleep")).read_bytes(), 10)
        prog.chmod(0o755)
        running = subprocess.Popen([str(prog), "60"])
        try:
            assert _until(lambda: os.path.exists(f"/proc/{running.pid}/exe")
                          and os.readlink(f"/proc/{running.pid}/exe") == str(prog))
            g.put_file(str(prog), b"#!/bin/sh\necho new\n", 10)
        finally:
            running.kill()
            running.wait()
        assert prog.read_bytes() == b"#!/bin/sh\necho new\n" and _mode(prog) == 0o644
        assert sorted(p.name for p in prog.parent.iterdir()) == ["prog"]   # no part file left
    finally:
        g.close()


def test_the_same_agent_is_not_sent_twice(server, keys, tmp_path, bin_dir):
    """--build-on-remote installs kh-agent to build, the boot phase again to run: the second time
    nothing is written (as another user the write would run under kh-agent itself)."""
    _pass_through_sudo(bin_dir)
    g = _guest(server, keys, tmp_path, user="pi")
    g.connect(20)
    try:
        g.install_agent(b"#!/bin/sh\n", 10)
        g.sessions = False   # (a stand-in agent: no command session to open)
        sent = len(server.commands)
        g.install_agent(b"#!/bin/sh\n", 10)
        assert len(server.commands) == sent and g.sessions
        g.sessions = False
        g.install_agent(b"#!/bin/sh\n# another\n", 10)   # another agent is sent
        assert len(server.commands) > sent
        assert (tmp_path / "kh/.bin/kh-agent").read_bytes() == b"#!/bin/sh\n# another\n"
    finally:
        g.close()


@pytest.mark.parametrize("said", ["sudo: a password is required",
                                  "Sorry, user pi is not allowed to execute '/bin/sh -c true' as root on board."])
def test_sudo_wanting_a_password_or_refusing_is_one_line_naming_passwordless_sudo(server, keys, tmp_path, bin_dir, said):
    _script(bin_dir / "sudo", f'echo "{said}" >&2; exit 1\n')
    g = _guest(server, keys, tmp_path, user="pi")
    g.connect(20)
    with pytest.raises(InfraError) as e:
        g.run("true", 10)
    msg = str(e.value)
    assert msg.startswith(f"pi@127.0.0.1 needs passwordless sudo") and said in msg and "\n" not in msg
    assert "'pi ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/kharness" in msg and "connect as root@127.0.0.1" in msg
    assert len(server.commands) == 1   # never retried, never waiting on a prompt
    g.close()


def test_a_remote_without_sudo_is_one_line_saying_so(server, keys, tmp_path, bin_dir):
    (bin_dir / "sh").symlink_to("/bin/sh")
    server.path = str(bin_dir)   # a shell, and no sudo anywhere in PATH
    g = _guest(server, keys, tmp_path, user="pi")
    g.connect(20)
    with pytest.raises(InfraError) as e:
        g.run("true", 10)
    msg = str(e.value)
    assert msg.startswith("pi@127.0.0.1 is not root and 127.0.0.1 has no sudo") and "not found" in msg, msg
    assert "install sudo there" in msg and "NOPASSWD" in msg and "\n" not in msg
    g.close()


# --- the kernel log -------------------------------------------------------------------------------------

def test_the_log_stream_feeds_console_text_and_survives_the_connection(guest, server, bin_dir, tmp_path):
    pidfile = tmp_path / "dmesg.pid"
    _script(bin_dir / "dmesg", f'[ "$1" = -w ] || exit 1\necho $$ > {pidfile}\n'
                               "printf '[    0.000000] Linux version 6.1\\n[   12.500000] hello: loaded\\n'\n"
                               "exec sleep 1000\n")
    guest.start_log_stream()
    assert _until(lambda: "hello: loaded" in guest.console_text())
    assert guest.console_text() == "[    0.000000] Linux version 6.1\n[   12.500000] hello: loaded\n"
    assert guest.console_text(14) == "hello: loaded\n"
    server.drop_connections()
    assert _until(lambda: not guest.transport.is_active())
    assert "hello: loaded" in guest.console_text()   # what arrived before stays readable


def test_closing_ends_the_remote_log_reader(guest, bin_dir, tmp_path):
    pidfile = tmp_path / "dmesg.pid"
    _script(bin_dir / "dmesg", f"echo $$ > {pidfile}\necho '[    1.000000] x'\nexec sleep 1000\n")
    guest.start_log_stream()
    assert _until(lambda: "x" in guest.console_text())
    pid = int(pidfile.read_text())
    guest.close()
    assert _until(lambda: _gone(pid)), "the remote dmesg -w outlived the session"


def test_the_run_directory_records_commands_and_the_kernel_log(server, keys, tmp_path, bin_dir):
    _script(bin_dir / "dmesg", "echo '[    1.000000] to disk'\nexec sleep 1000\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    g = _guest(server, keys, tmp_path, workdir=run_dir)
    g.connect(20)
    g.start_log_stream()
    g.run("exit 4", 10)
    assert _until(lambda: "to disk" in g.console_text())
    g.close()
    assert (run_dir / "kernel.log").read_text() == "[    1.000000] to disk\n"
    assert any(line.startswith("exit 4 ") and line.endswith(" exit 4") for line in
               (run_dir / "ssh.log").read_text().splitlines())


# --- the command session (kharness.vm.ssh_session): kh-serve and the real kh-agent ---------------

def test_commands_go_over_one_session_with_the_same_answers(guest, tmp_path):
    """With the real kh-agent (built for this host's target) installed, commands share one exec
    channel (kh-serve): the same stdout, stderr, status and stdin as one channel each; a command
    past its deadline takes the session down and the next command gets a new one."""
    from kharness.hw.agent import build_agent
    from kharness.targets import get_target

    if os.uname().machine != "x86_64":
        pytest.skip("kh-agent is built here for the x86_64 target")
    exec_answers = [guest.run(c, 10) for c in ("echo out; echo err >&2; exit 3", "pwd")]
    guest.install_agent(build_agent(get_target("x86_64")).read_bytes(), 30)
    assert guest.sessions
    first = guest.run("echo out; echo err >&2; exit 3", 10)
    session = guest._session
    assert session is not None
    assert [(r.stdout, r.stderr, r.rc) for r in (first, guest.run("pwd", 10))] == \
        [(r.stdout, r.stderr, r.rc) for r in exec_answers]
    assert guest._session is session                       # the same session for both
    assert guest.run("wc -c", 10, stdin=b"x" * 100000).stdout.strip() == "100000"
    with pytest.raises(CommandTimeout):
        guest.run("exec sleep 1000", 1)
    assert guest._session is None                          # dropped with the stuck command
    assert guest.run("echo again", 10).stdout == "again\n"  # a new one
    assert guest._session is not session
