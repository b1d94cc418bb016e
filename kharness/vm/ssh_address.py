"""Where an SSH guest is: ``user@host[:port]`` as the user writes it on the command line."""

from __future__ import annotations

import getpass
import re
from dataclasses import dataclass

from kharness.errors import UsageError

# Conservative on purpose: the host and user reach messages, known_hosts lines and paramiko, never
# a shell, but a typo caught here is one clear line instead of a DNS error later.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]*")
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
_HINT = "write user@host, user@host:port or user@[ipv6]:port (e.g. pi@raspberrypi.local:22)"


@dataclass(frozen=True)
class SshAddress:
    user: str
    host: str            # a name or an address; IPv6 without brackets
    port: int = 22

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"bad SSH port {text!r} in {whole!r}", hint="a port is a number from 1 to 65535")
    return int(text)


def parse_address(text: str) -> SshAddress:
    """``user@host[:port]``, ``host`` (user: the local user), ``user@[::1]:2222``; UsageError on
    anything else."""
    whole = text
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"bad SSH address {whole!r}", hint=_HINT)
    user, at, rest = text.rpartition("@")
    if at and not _USER_RE.fullmatch(user):
        raise UsageError(f"bad user name {user!r} in SSH address {whole!r}", hint=_HINT)
    if not at:
        user = getpass.getuser()
    port = 22
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or not _IPV6_RE.fullmatch(host) or ":" not in host:
            raise UsageError(f"bad IPv6 address in SSH address {whole!r}", hint=_HINT)
        if tail:
            if not tail.startswith(":"):
                raise UsageError(f"bad SSH address {whole!r}", hint=_HINT)
            port = _port(tail[1:], whole)
    else:
        if rest.count(":") > 1:
            raise UsageError(f"IPv6 address without brackets in SSH address {whole!r}", hint=_HINT)
        host, colon, tail = rest.partition(":")
        if colon:
            port = _port(tail, whole)
        if not _HOST_RE.fullmatch(host):
            raise UsageError(f"bad host name {host!r} in SSH address {whole!r}", hint=_HINT)
    return SshAddress(user, host, port)
