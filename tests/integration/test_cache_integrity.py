"""The cache is content-addressed and sealed, for real: an unchanged module is not rebuilt, an
edited one is, and a cached kernel, headers, image or module altered on disk is noticed and made
again from its verified inputs — the run still passes, never on the altered copy.

Each test has a cache of its own (sharing only the downloaded, hash-checked .debs and indices with
the normal cache), so the damage done here cannot reach a run of another xdist worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES, KHARNESS, ROOT, RUN_LIMIT, Outcome

pytestmark = pytest.mark.vm
OWN = ("kernels", "headers", "images", "busybox", "agent", "builds")   # not the shared debs


@pytest.fixture
def private(tmp_path):
    shared = Path(os.environ.get("KHARNESS_CACHE") or Path.home() / ".cache" / "kharness")
    cache = tmp_path / "cache"
    cache.mkdir()
    for kind in ("debs", "index"):
        (shared / kind).mkdir(parents=True, exist_ok=True)
        (cache / kind).symlink_to(shared / kind)
    mod = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", mod)

    def call(*args: str) -> Outcome:
        out = tmp_path / "result.json"
        out.unlink(missing_ok=True)
        env = dict(os.environ, KHARNESS_PROGRESS="0", KHARNESS_CACHE=str(cache))
        p = subprocess.run([*KHARNESS, *args, "--json", str(out)] if args[0] == "run" else [*KHARNESS, *args],
                           capture_output=True, text=True, timeout=RUN_LIMIT, cwd=ROOT, env=env)
        return Outcome(p.returncode, p.stdout, p.stderr, json.loads(out.read_text()) if out.exists() else None)

    return cache, mod, call


def _ok(o: Outcome) -> dict:
    assert o.rc == 0 and o.result and o.result["status"] == "pass", (o.stdout, o.stderr, o.result and o.result["summary"])
    return o.result


def test_builds_are_reused_only_while_sources_and_outputs_are_unchanged(private):
    cache, mod, kh = private
    first = _ok(kh("run", str(mod)))
    assert first["build"]["cached"] is False
    again = _ok(kh("run", str(mod)))
    assert again["build"]["cached"] is True                 # unchanged: not rebuilt
    assert again["modules"][0]["path"] == first["modules"][0]["path"]
    ko = Path(again["modules"][0]["path"])
    ko.write_bytes(ko.read_bytes() + b"\0")                 # the cached .ko altered on disk
    assert _ok(kh("run", str(mod)))["build"]["cached"] is False
    assert _ok(kh("run", str(mod)))["build"]["cached"] is True
    with (mod / "hello.c").open("a") as f:                  # the author edits the module
        f.write("\n/* edited */\n")
    assert _ok(kh("run", str(mod)))["build"]["cached"] is False


def test_altered_kernel_headers_and_image_are_made_again_and_verify_finds_the_rest(private):
    cache, mod, kh = private
    r = _ok(kh("run", str(mod)))
    kernel = Path(r["image"]["kernel"])
    size = kernel.stat().st_size
    with kernel.open("r+b") as f:                           # a truncated cached kernel
        f.truncate(size // 2)
    image = Path(r["image"]["base"])
    image.write_bytes(b"not an initramfs")                  # a clobbered cached image
    o = kh("run", str(mod))
    r = _ok(o)
    said = o.stdout + o.stderr
    assert f"cached kernel {kernel.parent.name}: {kernel.name} has {size // 2} bytes" in said, said
    assert f"cached image {image.parent.name}" in said, said
    assert kernel.stat().st_size == size and image.stat().st_size > 1000
    # Headers: a file altered, then a build that needs them (the module is edited).
    headers = next(p for p in (cache / "headers").iterdir() if p.is_dir() and not p.name.startswith("."))
    victim = next(headers.rglob("include/linux/module.h"))
    victim.write_text(victim.read_text() + "\n#error altered headers\n")
    with (mod / "hello.c").open("a") as f:
        f.write("\n/* edited */\n")
    o = kh("run", str(mod))
    r = _ok(o)
    assert r["build"]["cached"] is False
    assert "altered headers" not in victim.read_text()      # unpacked again, not used altered
    assert "was altered on disk" in o.stdout + o.stderr
    # Same size, same time: only a hash sees it, which `kharness cache verify` compares.
    assert kh("cache", "verify", *OWN).rc == 0
    st = kernel.stat()
    with kernel.open("r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(kernel, ns=(st.st_atime_ns, st.st_mtime_ns))
    o = kh("cache", "verify", *OWN)
    assert o.rc == 1 and "does not match its SHA256" in o.stdout and kernel.parent.name in o.stdout
    assert kh("cache", "verify", "--fix", *OWN).rc == 0
    _ok(kh("run", str(mod)))
    assert kh("cache", "verify", *OWN).rc == 0


