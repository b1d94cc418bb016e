"""A real SSH server for the SSH guest's tests: paramiko's server side on 127.0.0.1, in threads.

It speaks the real protocol to the real client stack (host keys, public-key authentication, exec
channels, SFTP), and runs each exec request as sshd does: ``sh -c COMMAND`` in a session of its
own (sshd's setsid: the process group kharness kills on a timeout is that session's, never the
test runner's), stdin/stdout/stderr on the channel, the exit status at the end (none for a process
killed by a signal: sshd sends an exit-signal, which paramiko's client drops). Commands run on
this host as the test's user; ``bin_dir`` goes first in their PATH (a fake ``sudo``, ``dmesg``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.sftp import SFTP_OK


class _Handle(SFTPHandle):
    def stat(self):
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)


class _Sftp(SFTPServerInterface):
    """Host paths as they are (the tests hand it paths in their tmp_path)."""

    def open(self, path, flags, attr):
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        mode = "ab" if flags & os.O_APPEND else "wb" if flags & (os.O_WRONLY | os.O_RDWR) else "rb"
        if flags & os.O_RDWR:
            mode = "r+b"
        h = _Handle(flags)
        h.filename = path
        h.readfile = h.writefile = os.fdopen(fd, mode)
        return h

    def stat(self, path):
        try:
            return SFTPAttributes.from_stat(os.stat(path))
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)

    lstat = stat

    def mkdir(self, path, attr):
        try:
            os.mkdir(path)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return SFTP_OK

    def chattr(self, path, attr):
        try:
            SFTPServer.set_file_attr(path, attr)
        except OSError as e:
            return SFTPServer.convert_errno(e.errno)
        return SFTP_OK


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: "SshServer"):
        self.server = server

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if self.server.slow_auth_first:
            delay, self.server.slow_auth_first = self.server.slow_auth_first, 0.0
            time.sleep(delay)
        ok = any(key.asbytes() == k.asbytes() for k in self.server.authorized)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=self.server._exec, args=(channel, command.decode()), daemon=True).start()
        return True


class SshServer:
    def __init__(self, host_key: paramiko.PKey, authorized: list[paramiko.PKey], bin_dir: Path | None = None,
                 port: int = 0, reject_first: int = 0, slow_auth_first: float = 0.0):
        self.host_key = host_key
        self.authorized = authorized
        self.bin_dir = bin_dir
        self.reject_first = reject_first   # connections closed at once, before any banner
        self.slow_auth_first = slow_auth_first   # the first authentication takes this long (a busy guest)
        self.path: str | None = None       # the commands' whole PATH, when set (a host without some tool)
        self.commands: list[str] = []      # every exec request, in order
        self.exec_started = threading.Event()
        self.connections = 0
        self._procs: list[subprocess.Popen] = []
        self._transports: list[paramiko.Transport] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="ssh-test-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.reject_first:
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # as sshd does
        t = paramiko.Transport(conn)
        self._transports.append(t)
        t.add_server_key(self.host_key)
        t.set_subsystem_handler("sftp", SFTPServer, _Sftp)
        try:
            t.start_server(server=_Interface(self))
        except (paramiko.SSHException, EOFError, OSError):
            t.close()

    def _exec(self, chan: paramiko.Channel, command: str) -> None:
        env = dict(os.environ)
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}:{env['PATH']}"
        if self.path is not None:
            env["PATH"] = self.path
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=env)
        self._procs.append(proc)
        self.commands.append(command)
        self.exec_started.set()

        def feed():
            try:
                while True:
                    data = chan.recv(32768)
                    if not data:
                        break
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except (OSError, EOFError, paramiko.SSHException):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

        def pump(stream, send):
            try:
                while True:
                    data = os.read(stream.fileno(), 65536)
                    if not data:
                        break
                    send(data)
            except (OSError, EOFError, paramiko.SSHException):
                pass   # the channel is gone: as sshd, stop reading (the process gets SIGPIPE)
            stream.close()

        threading.Thread(target=feed, daemon=True).start()
        pumps = [threading.Thread(target=pump, args=(proc.stdout, chan.sendall), daemon=True),
                 threading.Thread(target=pump, args=(proc.stderr, chan.sendall_stderr), daemon=True)]
        for p in pumps:
            p.start()
        rc = proc.wait()
        for p in pumps:
            p.join(5)
        try:
            if rc >= 0:
                chan.send_exit_status(rc)
            chan.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def drop_connections(self) -> None:
        """Every connection ends at once, as when the board dies (the listener stays)."""
        for t in list(self._transports):
            t.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)
        self.drop_connections()
        for p in self._procs:   # the whole session: what a command left behind too
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(10)

    def __enter__(self) -> "SshServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --- what the tests share ---------------------------------------------------------------------------

def public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class Keys:
    """The server's host key and the client's identity (ECDSA: paramiko makes those itself)."""

    def __init__(self, tmp: Path):
        self.host = paramiko.ECDSAKey.generate()
        self.client = paramiko.ECDSAKey.generate()
        self.identity = tmp / "id_ecdsa"
        self.client.write_private_key_file(str(self.identity))


def sandbox_guest(guest, tmp: Path):
    """Point what the guest puts on the "remote" (this host) into ``tmp``, never at /kh or /tmp."""
    guest.remote_dir = str(tmp / "kh")
    (tmp / "tmp").mkdir(exist_ok=True)
    guest.remote_tmp_glob = str(tmp / "tmp" / ".kh.*")
    return guest
