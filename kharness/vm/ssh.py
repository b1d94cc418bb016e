"""A guest over SSH: a distro VM's sshd or a real board, driven with paramiko.

The third implementation of the :class:`kharness.guest.Guest` protocol (beside the QEMU guest and
the fake one): commands over exec channels (``vm/ssh_exec.py``: wrapping, deadlines, killing),
files over SFTP, the kernel log on a channel of its own (``vm/ssh_log.py``), host keys checked by
kharness's own policy (``vm/ssh_hostkeys.py``). ``put_file``'s fallback for a user other than
root, ``dmesg_since`` and ``health`` come from :class:`kharness.agent_client.AgentCalls`.
docs/ssh.md describes what it does on a remote, for the people who own the board.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import posixpath
import re
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pexpect

from kharness.agent_client import AgentCalls, put_file_command
from kharness.errors import InfraError, UsageError
from kharness.paths import data_dir
from kharness.vm import ssh_exec, ssh_sftp
from kharness.vm.channel import CommandResult
from kharness.vm.errors import CommandTimeout, GuestDied, GuestError
from kharness.vm.ssh_address import SshAddress, parse_address
from kharness.vm.ssh_exec import REMOTE_DIR, REMOTE_TMP_GLOB
from kharness.vm.ssh_hostkeys import CheckPolicy, HostKeyRefused, HostKeys, refused_changed, trust
from kharness.vm.ssh_log import LogStream
from kharness.vm.ssh_session import SERVE, CommandSession, SessionLost

# paramiko logs each failed attempt (a booting sshd) with a traceback; with no handler of its own
# Python would print those on stderr. Failures reach the user as kharness's one-line errors.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

__all__ = ["SshAddress", "parse_address", "HostKeys", "HostKeyRefused", "RemoteFacts", "SshGuest"]

ATTEMPT_TIMEOUT = 5.0     # TCP connect of one attempt
# Banner, key exchange and authentication of one attempt. Generous: an emulated POWER guest's
# sshd (TCG) takes tens of seconds over its first key exchange and signature check; a deadline
# that cuts it short only starts the same slow work again.
HANDSHAKE_TIMEOUT = 90.0
RETRY_PAUSE = 0.25        # between attempts while sshd is not up yet
# ... to a guest on this host (QEMU's forwarded port): a refused attempt costs nothing, and a
# restored guest answers a moment after QEMU listens.
LOCAL_RETRY_PAUSE = 0.05
SESSION_OPEN_TIMEOUT = 30.0   # opening the command session (an exec channel and kh-serve's ready line)
DROP_CHECK_TIMEOUT = 3.0      # a session that ended: does sshd still answer (else the connection is gone)
KEEPALIVE = 5             # seconds of silence before an SSH keepalive (NAT state; a reset peer is seen)
MARK_FILE = ".kharness"   # in REMOTE_DIR: this /kh is kharness's own (cleanup may remove it)
PROBE = "uname -r; uname -m; od -An -tx1 -N6 /bin/sh"


class SshUnanswered(InfraError):
    """Nothing answered SSH before the deadline (refused, reset, no banner): a board that is off,
    or a guest whose sshd has not started yet. Other connect errors (a refused host key, a
    refused key) would not change by trying again."""


@dataclass(frozen=True)
class RemoteFacts:
    release: str      # uname -r
    machine: str      # uname -m (the kernel's: aarch64 under a 32-bit userland too)
    endian: str       # "little" / "big": of the userland (/bin/sh's ELF header), the kernel's too
    bits: int         # 32 / 64: of the userland (/bin/sh's ELF class), what programs must be built for


def parse_probe(stdout: str) -> RemoteFacts:
    lines = stdout.splitlines()
    octets = lines[2].split() if len(lines) >= 3 else []
    if len(lines) < 3 or octets[:4] != ["7f", "45", "4c", "46"] or len(octets) < 6 \
            or octets[4] not in ("01", "02") or octets[5] not in ("01", "02"):
        raise ValueError(f"unexpected probe reply {stdout[:200]!r}")
    return RemoteFacts(lines[0].strip(), lines[1].strip(), "little" if octets[5] == "01" else "big",
                       32 if octets[4] == "01" else 64)


def _slow_auth(e: Exception) -> bool:
    """paramiko raises AuthenticationException("Authentication timeout.") when the server took
    longer than auth_timeout: slowness, unlike a refusal."""
    return "timeout" in str(e).lower()


def _why(e: BaseException) -> str:
    """A failed attempt in a few words."""
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    if isinstance(e, socket.timeout):
        return "timed out"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _shown(command: str) -> str:
    return command if len(command) <= 80 else command[:77] + "..."


class SshGuest(AgentCalls):
    def __init__(self, address: SshAddress, *, identity: Path | None = None, host_keys: HostKeys = HostKeys(),
                 use_agent: bool = True, workdir: Path | None = None, cleanup: bool = True) -> None:
        self.address = address
        self.identity = identity
        self.host_keys = host_keys
        self.use_agent = use_agent
        self.workdir = workdir
        self.do_cleanup = cleanup
        self.root = address.user == "root"
        self.release: str | None = None
        self.boot_seconds: float | None = None
        self.attempts = 0                  # connection attempts made by connect()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._log: LogStream | None = None
        self._owns_dir = False             # this guest made (or re-made) remote_dir
        self._agent: str | None = None     # what install_agent put there (kh-agent's and kh-serve's digest)
        # Commands go over one command session (kharness.vm.ssh_session) once kh-serve is there
        # (install_agent, or a restored guest saved with it); until then, an exec channel each.
        self.sessions = False
        self._session: CommandSession | None = None
        # Where kharness's files go on the remote (tests point them into a sandbox).
        self.remote_dir = REMOTE_DIR
        self.remote_tmp_glob = REMOTE_TMP_GLOB
        self._pkey = self._load_identity() if identity is not None else None

    # -- connecting -------------------------------------------------------------------------
    def _load_identity(self) -> paramiko.PKey:
        assert self.identity is not None
        try:
            return paramiko.PKey.from_path(self.identity)
        except FileNotFoundError:
            raise UsageError(f"no SSH key file {self.identity}", hint="pass --identity a private key file") from None
        except (paramiko.PasswordRequiredException, TypeError):
            # (TypeError: the cryptography package's "Password was not given but private key is encrypted")
            raise UsageError(f"the SSH key {self.identity} has a passphrase",
                             hint="load it into ssh-agent (ssh-add) and leave out --identity") from None
        except (paramiko.SSHException, ValueError, OSError) as e:
            raise UsageError(f"cannot read SSH key {self.identity}: {e}",
                             hint="give a private key file (ssh-keygen makes one)") from None

    @property
    def transport(self) -> paramiko.Transport | None:
        return self._client.get_transport() if self._client is not None else None

    def connect(self, timeout: float) -> None:
        """TCP, SSH handshake and authentication within ``timeout`` (an absolute deadline),
        retrying while sshd refuses, resets or sends no banner yet (a booting guest)."""
        if self._client is not None:   # a second connect replaces the first connection
            self._drop_session()
            self._client.close()
            self._client = None
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = "no attempt"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SshUnanswered(f"{self.address} did not answer SSH within {timeout:g}s ({last})",
                                 hint="is the board on, on the network, and running sshd on that port?")
            self.attempts += 1
            client = self._new_client()
            try:
                client.connect(self.address.host, self.address.port, username=self.address.user,
                               pkey=self._pkey, allow_agent=self.use_agent and self._pkey is None,
                               look_for_keys=self.use_agent and self._pkey is None,
                               timeout=min(ATTEMPT_TIMEOUT, left), banner_timeout=min(HANDSHAKE_TIMEOUT, left),
                               auth_timeout=min(HANDSHAKE_TIMEOUT, left), channel_timeout=min(HANDSHAKE_TIMEOUT, left))
            except socket.gaierror as e:
                client.close()
                raise InfraError(f"cannot resolve {self.address.host}: {e.strerror}",
                                 hint="check the board's name, or give its address") from None
            except paramiko.BadHostKeyException as e:
                client.close()
                raise refused_changed(self.address, e.key, self.host_keys) from None
            except paramiko.AuthenticationException as e:
                client.close()
                if _slow_auth(e):   # a slow sshd, not a refused key: again while time is left
                    last = "authentication did not finish within the attempt's deadline"
                    continue
                raise self._auth_failed(e) from None
            except (HostKeyRefused, UsageError, InfraError):
                client.close()
                raise
            except paramiko.IncompatiblePeer as e:
                client.close()
                if self.host_keys.pinned is not None and "host key" in str(e):
                    raise HostKeyRefused(f"{self.address} does not offer the pinned host key's type ({e})",
                                         hint="pin the key its sshd presents") from None
                raise InfraError(f"{self.address}: SSH negotiation failed: {e}",
                                 hint="the board's sshd shares no algorithm with paramiko") from None
            except paramiko.SSHException as e:
                # "no authentication methods available": no key to offer at all.
                client.close()
                if "authentication" in str(e).lower():
                    raise self._auth_failed(e) from None
                last = str(e) or type(e).__name__
            except (OSError, EOFError) as e:   # refused, reset, timed out: sshd not (yet) there
                client.close()
                last = _why(e)
            else:
                self._client = client
                transport = client.get_transport()
                assert transport is not None
                transport.set_keepalive(KEEPALIVE)
                # Each command is a few small packets each way: without this, Nagle's algorithm
                # meeting the peer's delayed ACK costs ~40 ms a round.
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.boot_seconds = time.monotonic() - t0
                return
            pause = LOCAL_RETRY_PAUSE if self.address.host in ("127.0.0.1", "::1", "localhost") else RETRY_PAUSE
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        trust(self.host_keys, self.address.host, self.address.port, client.get_host_keys())
        client.set_missing_host_key_policy(CheckPolicy(self.host_keys, self.address))
        return client

    def _auth_failed(self, e: Exception) -> InfraError:
        how = (f"the key {self.identity}" if self.identity is not None
               else "the SSH agent's and ~/.ssh's keys" if self.use_agent else "no key (agent disabled)")
        return InfraError(f"{self.address} refused {how} ({e or type(e).__name__})",
                          hint=f"add the public key to ~{self.address.user}/.ssh/authorized_keys on the board, "
                               "or pass --identity KEY")

    def reachable(self, timeout: float) -> bool:
        """Does sshd still answer: a fresh TCP connection that reads an ``SSH-`` banner in time."""
        deadline = time.monotonic() + timeout
        try:
            with socket.create_connection((self.address.host, self.address.port), timeout=timeout) as s:
                got = b""
                while b"SSH-" not in got and len(got) < 8192:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    s.settimeout(left)
                    data = s.recv(256)
                    if not data:
                        return False
                    got += data
                return b"SSH-" in got
        except OSError:
            return False

    # -- commands ---------------------------------------------------------------------------
    def _live_transport(self, what: str) -> paramiko.Transport:
        transport = self.transport
        if transport is None or not transport.is_active():
            raise GuestDied(f"the SSH connection to {self.address} is gone ({what})", self.console_text())
        return transport

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        """``command`` as root, on the command session once kh-agent and kh-serve are in place
        (kharness.vm.ssh_session: ~0.03 s a command), else on an exec channel of its own."""
        if self.sessions:
            return self._session_run(command, timeout, stdin)
        return self.run_exec(command, timeout, stdin)

    def _session_run(self, command: str, timeout: float, stdin: bytes) -> CommandResult:
        start = time.monotonic()
        shown = _shown(command)
        transport = self._live_transport(f"before {shown!r}")
        if self._session is None:
            try:
                self._session = CommandSession(transport, self.root, self.remote_dir,
                                               self.workdir / "channel.log" if self.workdir else None,
                                               min(timeout, SESSION_OPEN_TIMEOUT))
            except (paramiko.SSHException, OSError, EOFError, SessionLost, CommandTimeout, pexpect.ExceptionPexpect):
                if not transport.is_active():
                    raise GuestDied(f"the SSH connection to {self.address} dropped before {shown!r}",
                                    self.console_text()) from None
                self.sessions = False   # (no kh-serve there after all): one channel per command
                return self.run_exec(command, timeout, stdin)
        session = self._session
        try:
            res = session.run(command, timeout, stdin)
        except CommandTimeout:
            self._session = None
            session.kill()   # the command and the session with it; the next command opens another
            self._note(command, "timeout", start)
            raise CommandTimeout(f"command {shown!r} did not finish within {timeout:g}s", self.console_text()) from None
        except (SessionLost, pexpect.ExceptionPexpect):
            self._session = None
            session.close()
            self._note(command, "dropped", start)
            if not transport.is_active() or not self.reachable(DROP_CHECK_TIMEOUT):
                raise GuestDied(f"the SSH connection to {self.address} dropped during {shown!r}",
                                self.console_text()) from None
            raise GuestDied(f"the command session on {self.address} ended during {shown!r}",
                            self.console_text()) from None
        self._note(command, f"exit {res.rc}", start)
        return res

    def run_exec(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        """``command`` on an exec channel of its own."""
        start = time.monotonic()
        deadline = start + timeout
        shown = _shown(command)
        transport = self._live_transport(f"before {shown!r}")
        try:
            chan = transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
        except (paramiko.SSHException, OSError, EOFError) as e:
            if transport.is_active():
                raise CommandTimeout(f"command {shown!r}: no SSH channel within {timeout:g}s ({e})",
                                     self.console_text()) from None
            raise GuestDied(f"the SSH connection to {self.address} dropped before {shown!r}",
                            self.console_text()) from None
        try:
            chan.exec_command(ssh_exec.wrap(command, self.root, self.remote_dir))
            raw = ssh_exec.collect(chan, transport, stdin, deadline)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if transport.is_active():
                raise GuestError(f"{self.address} did not run {shown!r}: {e or type(e).__name__}",
                                 self.console_text()) from None
            raw = ssh_exec.Raw(None, ssh_exec.Capped(0), ssh_exec.Capped(0), True, True)
        finally:
            chan.close()
        self._note(command, "dropped" if raw.dropped else "timeout" if not raw.done else f"exit {raw.rc}", start)
        if raw.dropped:
            raise GuestDied(f"the SSH connection to {self.address} dropped during {shown!r}", self.console_text())
        pgid, started, err = ssh_exec.split_marker(bytes(raw.err.data))
        if not raw.done:
            ssh_exec.kill_group(transport, pgid, self.root)
            raise CommandTimeout(f"command {shown!r} did not finish within {timeout:g}s", self.console_text())
        if not started and not self.root:
            raise self._no_sudo(raw.rc, ssh_exec.decode(err))
        err_size = raw.err.size - (len(raw.err.data) - len(err))
        return CommandResult(command, -1 if raw.rc is None else raw.rc, ssh_exec.decode(raw.out.data),
                             ssh_exec.decode(err[:ssh_exec.KH_MAX]), time.monotonic() - start,
                             raw.out.size, err_size)

    def _no_sudo(self, rc: int | None, said: str) -> InfraError:
        """A user other than root whose ``sudo -n sh`` did not start (the wrapper's marker never
        came): no sudo on the remote, or sudo that wants a password or refuses the user. One line,
        never a prompt (``-n``)."""
        user, host = self.address.user, self.address.host
        lines = [line.strip() for line in said.strip().splitlines() if line.strip()]
        last = lines[-1][:200] if lines else f"exit {rc}"
        grant = f"a line '{user} ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/kharness on {host}"
        if rc == 127 or (lines and re.search(r"\bsudo\b.*not found|not found.*\bsudo\b", lines[-1])):
            return InfraError(f"{user}@{host} is not root and {host} has no sudo: kharness runs its commands as root, "
                              f"through `sudo -n` for another user ({last})",
                              hint=f"install sudo there and give {user} {grant}, or connect as root@{host}")
        return InfraError(f"{user}@{host} needs passwordless sudo: kharness runs its commands as root, through "
                          f"`sudo -n` for another user, and sudo refused ({last})",
                          hint=f"give {user} {grant}, or connect as root@{host}")

    def _note(self, command: str, outcome: str, start: float) -> None:
        """The run directory's record of commands (ssh.log, as channel.log for a QEMU guest)."""
        if self.workdir is not None:
            try:
                with open(self.workdir / "ssh.log", "a") as f:
                    f.write(f"{outcome} {time.monotonic() - start:.3f}s {command}\n")
            except OSError:
                pass

    # -- files ------------------------------------------------------------------------------
    def _claim_remote_dir(self, timeout: float) -> None:
        """Make remote_dir ours (marked with MARK_FILE), refusing a directory of the same name that
        kharness did not make: cleanup removes remote_dir, and never a user's own."""
        if self._owns_dir:
            return
        d = shlex.quote(self.remote_dir)
        mark = shlex.quote(f"{self.remote_dir}/{MARK_FILE}")
        r = self.run(f"if [ -e {d} ] && [ ! -e {mark} ]; then echo foreign; exit 0; fi; "
                     f"mkdir -p {d}/.bin && : > {mark} && echo ours", timeout)
        if "foreign" in r.stdout:
            raise InfraError(f"{self.remote_dir} already exists on {self.address} and kharness did not make it",
                             hint=f"kharness puts its files in {self.remote_dir} and removes it afterwards: "
                                  "move that directory away first")
        if r.rc != 0 or "ours" not in r.stdout:
            raise GuestError(f"cannot make {self.remote_dir} on {self.address} (exit {r.rc}): {r.stderr.strip()[:200]}")
        self._owns_dir = True

    def put_file(self, path: str, data: bytes, timeout: float) -> None:
        self._put(path, data, timeout, 0o644)

    def _put(self, path: str, data: bytes, timeout: float, mode: int) -> None:
        if posixpath.normpath(path).startswith(self.remote_dir.rstrip("/") + "/"):
            self._claim_remote_dir(timeout)
        if not self.root:
            # SFTP writes as the login user: the file goes as a root command's stdin, written
            # beside its place and renamed into it (a program that runs, kh-agent, can be replaced;
            # nothing ever reads half a file).
            part = f"{path}.kh-part"
            q, qp = shlex.quote(path), shlex.quote(part)
            r = self.run(f"{{ {put_file_command(part)} && chmod {mode:o} {qp} && mv -f {qp} {q}; }} "
                         f"|| {{ kh_rc=$?; rm -f {qp}; exit $kh_rc; }}", timeout,
                         stdin=gzip.compress(data, 6, mtime=0))
            if r.rc != 0:
                raise GuestError(f"writing {path} on {self.address} failed (exit {r.rc}): {r.stderr.strip()[:200]}")
            return
        self._sftp_put(path, data, timeout, mode)

    def _sftp_put(self, path: str, data: bytes, timeout: float, mode: int) -> None:
        shown = f"writing {path}"
        transport = self._live_transport(shown)
        try:
            if self._sftp is None:
                self._sftp = paramiko.SFTPClient.from_transport(transport, window_size=None)
            ssh_sftp.put(self._sftp, path, data, mode, timeout)
        except socket.timeout:
            self._drop_sftp()
            raise CommandTimeout(f"{shown} did not finish within {timeout:g}s", self.console_text()) from None
        except (paramiko.SSHException, EOFError, OSError) as e:
            self._drop_sftp()
            if not transport.is_active():
                raise GuestDied(f"the SSH connection to {self.address} dropped while {shown}",
                                self.console_text()) from None
            raise GuestError(f"{shown} on {self.address} over SFTP failed: {e}") from None

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def _drop_sftp(self) -> None:
        ssh_sftp.close_quietly(self._sftp)
        self._sftp = None

    def install_agent(self, agent: bytes, timeout: float) -> None:
        """kh-agent as /kh/.bin/kh-agent (mode 0755), where every wrapped command finds it, and
        kh-serve beside it: from here on, commands go over the command session. The same agent
        again (``--build-on-remote`` installs it to build, the boot phase to run) is not sent
        again: it is in place, and as another user than root the write would be a command that
        kh-agent itself runs."""
        serve = (data_dir("images") / SERVE).read_bytes()
        digest = hashlib.sha256(agent + b"\0" + serve).hexdigest()
        if self._owns_dir and self._agent == digest:
            self.sessions = True
            return
        self._put(f"{self.remote_dir}/.bin/kh-agent", agent, timeout, 0o755)
        self._put(f"{self.remote_dir}/.bin/{SERVE}", serve, timeout, 0o755)
        self._agent = digest
        self.sessions = True

    def probe(self, timeout: float) -> RemoteFacts:
        r = self.run(PROBE, timeout)
        try:
            facts = parse_probe(r.stdout)
        except ValueError:
            raise InfraError(f"cannot tell what {self.address} runs: `{PROBE}` answered {r.stdout[:120]!r} "
                             f"{r.stderr.strip()[:120]!r}", hint="the board needs uname and od (coreutils or busybox)") \
                from None
        self.release = facts.release
        return facts

    # -- the kernel log ---------------------------------------------------------------------
    def start_log_stream(self) -> None:
        if self._log is not None:
            return
        transport = self._live_transport("starting the kernel log stream")
        try:
            self._log = LogStream(transport, self.root, self.workdir / "kernel.log" if self.workdir else None)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise GuestDied(f"cannot stream the kernel log of {self.address}: {e}", self.console_text()) from None

    def console_text(self, last: int = 32768) -> str:
        return self._log.text(last) if self._log is not None else ""

    # -- the end ----------------------------------------------------------------------------
    def cleanup(self, timeout: float) -> None:
        """Remove what kharness put on the remote: /kh (only when this guest made it) and kh-agent's
        files in /tmp."""
        if not self._owns_dir:
            return
        self._drop_session()
        self._drop_sftp()
        tmp_dir, tmp_glob = posixpath.split(self.remote_tmp_glob)   # (the glob part is ours: not quoted)
        r = self.run_exec(f"rm -rf {shlex.quote(self.remote_dir)} {shlex.quote(tmp_dir)}/{tmp_glob}", timeout)
        if r.rc != 0:
            raise GuestError(f"cleaning up {self.address} failed (exit {r.rc}): {r.stderr.strip()[:200]}")
        self._owns_dir = False
        self._agent = None

    def close(self) -> None:
        try:
            transport = self.transport
            if self.do_cleanup and transport is not None and transport.is_active():
                try:
                    self.cleanup(10.0)
                except (GuestError, InfraError):
                    pass
            self._drop_session()
            self._drop_sftp()
            if self._log is not None:
                self._log.close()
            if self._client is not None:
                self._client.close()
        except Exception:   # noqa: BLE001 - close() never raises (it runs on every way out)
            pass
        self._client = None

    def __enter__(self) -> "SshGuest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
