"""Download a file and verify it before anyone can use it.

A download goes to ``<dest>.part`` and is renamed onto ``dest`` only once its size and SHA256
match what the signed-off index says, so a truncated or tampered file is never visible in the
cache. Cached files are re-hashed before reuse.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from kharness import ui
from kharness.errors import InfraError
from kharness.lock import file_lock

CHUNK = 1 << 20
TIMEOUT = 60


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_bytes(url: str) -> bytes:
    """A small file (an index) into memory."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
            return r.read()
    except (urllib.error.URLError, OSError) as e:
        raise InfraError(f"download failed: {url}: {e}", hint="check the network or KHARNESS_DEBIAN_MIRROR") from e


def fetch_verified(url: str, dest: Path, *, sha256: str, size: int | None, label: str) -> Path:
    """``dest`` holding exactly the file with this SHA256; downloads it only if needed."""
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.exists():
            if sha256_file(dest) == sha256:
                return dest
            ui.info(f"[yellow]cached {dest.name} does not match its SHA256: downloading it again[/yellow]")
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        h = hashlib.sha256()
        got = 0
        bar = ui.ByteProgress(label, size)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r, open(part, "wb") as out:
                for block in iter(lambda: r.read(CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    got += len(block)
                    bar.advance(len(block))
        except (urllib.error.URLError, OSError) as e:
            part.unlink(missing_ok=True)
            raise InfraError(f"download failed: {url}: {e}", hint="check the network or KHARNESS_DEBIAN_MIRROR") from e
        finally:
            bar.close()
        if size is not None and got != size:
            part.unlink(missing_ok=True)
            raise InfraError(f"download of {label} is {got} bytes, the index says {size}: refusing it")
        if h.hexdigest() != sha256:
            part.unlink(missing_ok=True)
            raise InfraError(
                f"SHA256 mismatch for {label}: got {h.hexdigest()}, the index says {sha256}: refusing it"
            )
        os.replace(part, dest)
        return dest
