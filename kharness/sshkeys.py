"""kharness's own SSH keys, for the distro guests it builds.

Two ed25519 key pairs, made once per cache and kept in ``cache_dir()/ssh``:

* the **client** key: kharness logs in to its guests with it (its public line is baked into each
  guest's ``/root/.ssh/authorized_keys``);
* the guest **host** key: baked into every distro root filesystem as sshd's only host key, so the
  key a guest presents is known before it boots and is pinned: a guest of ours never needs trust
  on first use, and any other key on that port is refused.

They are made with the ``cryptography`` package (paramiko's own dependency) rather than
``ssh-keygen``: no host tool to install, and the same OpenSSH file format. Neither key is a
secret worth guarding beyond the cache's own permissions: both only reach guests on loopback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kharness.lock import file_lock
from kharness.paths import cache_dir

CLIENT = "client_ed25519"
HOST = "guest_host_ed25519"
CLIENT_COMMENT = "kharness"
HOST_COMMENT = "kharness-guest"


def key_dir() -> Path:
    return cache_dir() / "ssh"


def client_key() -> tuple[Path, str]:
    """kharness's identity for its guests: (private key file, public key line)."""
    return _pair(CLIENT, CLIENT_COMMENT)


def guest_host_key() -> tuple[Path, str]:
    """The sshd host key every distro guest presents: (private key file, public key line)."""
    return _pair(HOST, HOST_COMMENT)


def _pair(name: str, comment: str) -> tuple[Path, str]:
    d = key_dir()
    private, public = d / name, d / f"{name}.pub"
    if not (private.is_file() and public.is_file()):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        # Several kharness processes may ask at once: one makes the pair, the others read it.
        with file_lock(d / f"{name}.lock"):
            if not (private.is_file() and public.is_file()):
                priv, pub = _generate(comment)
                _write(private, priv, 0o600)   # ssh refuses a private key others can read
                _write(public, pub, 0o644)     # written last: its presence means the pair is whole
    return private, public.read_text().strip()


def _generate(comment: str) -> tuple[bytes, bytes]:
    # Here, not at the top: only the first use in a cache makes keys, and cryptography's import
    # would cost every run.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return priv, pub + f" {comment}\n".encode()


def _write(path: Path, data: bytes, mode: int) -> None:
    """``path`` holding ``data`` with ``mode``, written beside it and renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
