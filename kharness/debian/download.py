"""Download a file and verify it before anyone can use it.

A download goes to ``<dest>.part`` and is renamed onto ``dest`` only once its size and SHA256
match what the signed-off index says, so a truncated or tampered file is never visible in the
cache. Cached files are re-hashed before reuse.

Every transfer is bounded twice: it never reads past the size it was promised (a server that
keeps sending is cut off at one byte over), and it has an overall deadline scaled to that size
(a server that trickles a byte at a time never trips the per-read timeout, but does trip this).
A ``.part`` whose writer died is removed by ``kharness cache clean`` (see cachectl.py): one
being written is under its ``<dest>.lock``.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path
from typing import Callable

from kharness import ui
from kharness.errors import InfraError
from kharness.lock import file_lock

CHUNK = 1 << 20
TIMEOUT = 60                  # seconds without a byte before a read gives up
# The overall deadline of one download: a generous minimum plus an allowance per MB, i.e. it
# fails only below ~100 kB/s on a large file. KHARNESS_DOWNLOAD_DEADLINE (seconds) overrides it.
DEADLINE_MIN = 300.0
DEADLINE_PER_MB = 10.0
DEADLINE_UNKNOWN_SIZE = 3600.0
DEADLINE_ENV = "KHARNESS_DOWNLOAD_DEADLINE"
FETCH_BYTES_LIMIT = 64 << 20  # an in-memory fetch of unknown size stops here
_HINT = "check the network or KHARNESS_DEBIAN_MIRROR"


class Oversized(InfraError):
    """The server sent (or announced) more than the size the file was promised to have."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def deadline_for(size: int | None) -> float:
    """Seconds one download of ``size`` bytes may take in all."""
    env = os.environ.get(DEADLINE_ENV, "").strip()
    if env:
        try:
            value = float(env)
        except ValueError:
            value = 0.0
        if value > 0:
            return value
        raise InfraError(f"{DEADLINE_ENV}={env!r} is not a positive number of seconds",
                         hint=f"unset {DEADLINE_ENV} or give it seconds, e.g. {DEADLINE_ENV}=1800")
    if size is None:
        return DEADLINE_UNKNOWN_SIZE
    return DEADLINE_MIN + DEADLINE_PER_MB * size / 1e6


def _stream(url: str, sink: Callable[[bytes], None], *, limit: int | None, deadline: float,
            label: str, limit_says: str) -> int:
    """Copy ``url`` into ``sink``; the byte count. Raises a one-line InfraError if the body goes
    past ``limit``, stops short of what the server announced, or takes longer than ``deadline``."""
    # Here, not at the top: a run with a warm cache downloads nothing, and urllib with http and
    # email is ~10 ms of its imports.
    import http.client
    import urllib.error
    import urllib.request

    end = time.monotonic() + deadline
    got = 0
    try:
        with urllib.request.urlopen(url, timeout=min(TIMEOUT, deadline)) as r:
            announced = r.headers.get("Content-Length") if hasattr(r, "headers") else None
            announced = int(announced) if announced and announced.isdigit() else None
            if limit is not None and announced is not None and announced > limit:
                raise Oversized(f"download of {label}: the server announces {announced} bytes, "
                                 f"{limit_says} {limit}: refusing it")
            while True:
                if time.monotonic() > end:
                    raise InfraError(f"download of {label} did not finish within {deadline:.0f} s "
                                     f"({got} bytes so far): giving up",
                                     hint=f"a slow or stalled mirror; {DEADLINE_ENV}=<seconds> allows longer")
                # One read at most per check of the deadline: read1 returns what one receive
                # brought, never waiting to fill the chunk. One byte past the limit is enough to
                # know the body is too long.
                want = CHUNK if limit is None else min(CHUNK, limit - got + 1)
                block = r.read1(want)
                if not block:
                    break
                got += len(block)
                if limit is not None and got > limit:
                    raise Oversized(f"download of {label}: the server sent more than {limit} bytes, "
                                     f"{limit_says} {limit}: refusing it")
                sink(block)
            if announced is not None and got < announced:
                raise InfraError(f"download of {label} was cut short: {got} of the {announced} bytes the "
                                 f"server announced", hint=_HINT)
    except InfraError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        # OSError covers a reset connection and a read timeout; HTTPException a truncated or
        # malformed response (IncompleteRead, RemoteDisconnected is an OSError too).
        why = str(e) or type(e).__name__
        raise InfraError(f"download failed: {url}: {why}".replace("\n", " "), hint=_HINT) from e
    return got


def fetch_bytes(url: str, *, limit: int = FETCH_BYTES_LIMIT, deadline: float | None = None,
                limit_says: str = "the most kharness reads for it is") -> bytes:
    """A small file (an index) into memory, never more than ``limit`` bytes of it."""
    buf = io.BytesIO()
    _stream(url, buf.write, limit=limit, deadline=deadline if deadline is not None else deadline_for(limit),
            label=url, limit_says=limit_says)
    return buf.getvalue()


def fetch_verified(url: str, dest: Path, *, sha256: str, size: int | None, label: str,
                   deadline: float | None = None) -> Path:
    """``dest`` holding exactly the file with this SHA256; downloads it only if needed."""
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.exists():
            if sha256_file(dest) == sha256:
                return dest
            ui.info(f"[yellow]cached {dest.name} does not match its SHA256: downloading it again[/yellow]")
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        h = hashlib.sha256()
        bar = ui.ByteProgress(label, size)
        try:
            with open(part, "wb") as out:
                def sink(block: bytes) -> None:
                    out.write(block)
                    h.update(block)
                    bar.advance(len(block))

                got = _stream(url, sink, limit=size, deadline=deadline if deadline is not None else deadline_for(size),
                              label=label, limit_says="the index says")
        except BaseException:
            part.unlink(missing_ok=True)
            raise
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
