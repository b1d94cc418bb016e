"""Which SSH host keys kharness trusts, and the one-line refusals when a host presents another.

kharness checks host keys itself rather than with paramiko's stock policies: a pinned key (the
distro guests kharness builds carry a host key known in advance) accepts only that key; otherwise
the user's known_hosts decides, as OpenSSH's ``StrictHostKeyChecking=yes`` would, and
``accept_new`` is OpenSSH's ``accept-new``: an unknown host's key is added, a changed one is
always refused. docs/ssh.md describes the policy for users.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry

from kharness.errors import InfraError, UsageError
from kharness.vm.ssh_address import SshAddress


@dataclass(frozen=True)
class HostKeys:
    pinned: str | None = None           # a public key line ("ssh-ed25519 AAAA..."): only this key is accepted
    known_hosts: Path | None = None     # else ~/.ssh/known_hosts (missing file = empty)
    accept_new: bool = False            # add an unknown host's key to known_hosts (a CHANGED key is always refused)

    def known_hosts_path(self) -> Path:
        return self.known_hosts if self.known_hosts is not None else Path.home() / ".ssh" / "known_hosts"


class HostKeyRefused(InfraError):
    """The host presented a key kharness does not trust (one line: host, fingerprint, fix)."""


def host_key_name(host: str, port: int) -> str:
    """The host's name in known_hosts, as OpenSSH writes it (``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def parse_public_key(line: str) -> paramiko.PKey:
    """A public key line ("TYPE BASE64 [comment]"); UsageError when it is not one."""
    fields = line.split()
    if len(fields) < 2:
        raise UsageError(f"not an SSH public key line: {line[:60]!r}",
                         hint='give a line like "ssh-ed25519 AAAA..." (a .pub file\'s contents)')
    try:
        return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1], validate=True))
    except (binascii.Error, ValueError, paramiko.SSHException) as e:
        raise UsageError(f"not an SSH public key line: {line[:60]!r} ({e})",
                         hint='give a line like "ssh-ed25519 AAAA..." (a .pub file\'s contents)') from None


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...``, as OpenSSH prints it."""
    return key.fingerprint


def load_known_hosts(path: Path, keys: paramiko.HostKeys) -> paramiko.HostKeys:
    """Add the entries of a known_hosts file (missing file: none) to ``keys``. Hashed names work
    (paramiko matches them); marker lines (@cert-authority, @revoked) and lines paramiko cannot
    read are skipped."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return keys
    except OSError as e:
        raise InfraError(f"cannot read {path}: {e.strerror}", hint="fix its permissions or pass another file") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = HostKeyEntry.from_line(line, n)
        except Exception:   # noqa: BLE001 - paramiko raises several kinds (InvalidHostKey is its own)
            continue
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return keys


def trust(policy: HostKeys, host: str, port: int, keys: paramiko.HostKeys) -> None:
    """Fill a client's known host keys (``keys``): paramiko then prefers their key type in the
    handshake and raises BadHostKeyException when the host presents another key."""
    if policy.pinned is not None:
        key = parse_public_key(policy.pinned)
        keys.add(host_key_name(host, port), key.get_name(), key)
    else:
        load_known_hosts(policy.known_hosts_path(), keys)


def append_known_host(path: Path, name: str, key: paramiko.PKey) -> None:
    """Add ``name``'s key to known_hosts (created 0600, its directory 0700, when missing)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as f:
            if f.tell() > 0 and not path.read_bytes().endswith(b"\n"):
                f.write("\n")
            f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    except OSError as e:
        raise InfraError(f"cannot add the host key of {name} to {path}: {e.strerror}",
                         hint="fix the file's permissions") from None


class CheckPolicy(paramiko.MissingHostKeyPolicy):
    """paramiko calls this only for a host with no trusted key at all (a known host presenting
    another key raises BadHostKeyException before): refuse it, or add it with ``accept_new``."""

    def __init__(self, policy: HostKeys, address: SshAddress):
        self.policy = policy
        self.address = address

    def missing_host_key(self, client, hostname, key) -> None:
        fp = fingerprint(key)
        if self.policy.pinned is not None:   # (trust() always gave the client the pinned key)
            raise refused_changed(self.address, key, self.policy)
        path = self.policy.known_hosts_path()
        if not self.policy.accept_new:
            raise HostKeyRefused(
                f"{self.address}: unknown host key {key.get_name()} {fp} (not in {path})",
                hint="check the fingerprint on the board (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
                     "then pass --accept-new-host-key or add it to known_hosts")
        append_known_host(path, hostname, key)


def refused_changed(address: SshAddress, key: paramiko.PKey, policy: HostKeys) -> HostKeyRefused:
    """The host presented a key other than the one trusted for it (a pinned key, or known_hosts'
    entry of any type)."""
    fp = fingerprint(key)
    if policy.pinned is not None:
        want = fingerprint(parse_public_key(policy.pinned))
        return HostKeyRefused(f"{address}: host key {key.get_name()} {fp} is not the pinned key ({want})",
                              hint="the port reaches another sshd than the guest's, or the guest image "
                                   "changed: rebuild it")
    path = policy.known_hosts_path()
    name = host_key_name(address.host, address.port)
    return HostKeyRefused(
        f"{address}: host key CHANGED to {key.get_name()} {fp} (not the one in {path}); "
        "refused even with --accept-new-host-key",
        hint=f"if the board was reinstalled, remove the old key: ssh-keygen -f {shlex.quote(str(path))} "
             f"-R {shlex.quote(name)}")
