"""The guest agent: ``kh-agent``, a small static C program the guest runs for the system calls
shell cannot do exactly (ioctl with a binary payload, one read/write of exact bytes).

It is compiled per target with the target's cross compiler and cached by content; its reply is
one line of ``key=value`` pairs, parsed by :func:`parse_reply`.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from kharness import proc, seal
from kharness.errors import InfraError
from kharness.hostcc import libc_package, target_cc
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.targets import TargetProfile

SOURCE = Path(__file__).resolve().parent / "agent" / "kh-agent.c"
CFLAGS = ("-std=c99", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-s")
COMPILE_TIMEOUT = 300   # well under a second normally; a wedged compiler must not hold the lock

_INT_KEYS = {"ret", "step", "pid", "value", "lines"}
_HEX_KEYS = {"out", "data"}
_PAIR_RE = re.compile(r"([a-z_]+)=(\S*)")


def build_agent(profile: TargetProfile) -> Path:
    """The path of a static ``kh-agent`` for ``profile``, compiled on first use (well under a second)."""
    cc_name = f"{profile.cross_compile}gcc"
    cc = target_cc(profile, "for the kh-agent guest agent")
    env = dict(os.environ, LC_ALL="C")
    version = proc.run([cc, "--version"], timeout=60, env=env, what=f"{cc_name} --version").stdout
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, version.partition("\n")[0].encode(),
                                     " ".join(CFLAGS).encode()])).hexdigest()[:12]
    final = cache_dir() / "agent" / f"{profile.name}-{key}"
    binary = final / "kh-agent"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "kh-agent"):
            with staging_dir(final) as tmp:
                p = proc.run([cc, *CFLAGS, "-o", str(tmp / "kh-agent"), str(SOURCE)], timeout=COMPILE_TIMEOUT,
                             env=env, what=f"compiling kh-agent for {profile.name}")
                if p.returncode != 0:
                    out = p.stdout + p.stderr
                    if re.search(r"cannot find -lc\b|\.h: No such file|cannot find crt1\.o", out):
                        raise InfraError(f"{cc_name} has no static C library to build kh-agent "
                                         f"(Debian package {libc_package(profile)})",
                                         hint="run `make install`")
                    tail = " | ".join(out.strip().splitlines()[-5:])
                    raise InfraError(f"kh-agent build for {profile.name} failed: {tail}")
                seal.seal(tmp)
    return binary


def parse_reply(line: str) -> dict:
    """``"ret=0 errno=EINVAL out=0a0b"`` -> ``{"ret": 0, "errno": "EINVAL", "out": b"\\n\\x0b"}``.

    ``ret`` becomes an int, ``out`` and ``data`` bytes, anything else stays a str. A line that is
    not a space-separated list of distinct ``key=value`` pairs raises ValueError.
    """
    tokens = line.split()
    if not tokens:
        raise ValueError("empty kh-agent reply")
    out: dict = {}
    for tok in tokens:
        m = _PAIR_RE.fullmatch(tok)
        if m is None:
            raise ValueError(f"malformed kh-agent reply {line.strip()!r}: bad field {tok!r}")
        k, v = m.groups()
        if k in out:
            raise ValueError(f"malformed kh-agent reply {line.strip()!r}: {k} given twice")
        if k in _INT_KEYS:
            if not re.fullmatch(r"-?[0-9]+", v):
                raise ValueError(f"malformed kh-agent reply {line.strip()!r}: {k} is not an integer")
            out[k] = int(v)
        elif k in _HEX_KEYS:
            if not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", v):
                raise ValueError(f"malformed kh-agent reply {line.strip()!r}: {k} is not hex")
            out[k] = bytes.fromhex(v)
        else:
            out[k] = v
    return out
