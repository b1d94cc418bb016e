"""The guest's initramfs: a cached base image per target and kernel, plus a per-run payload.

The base (busybox-static for the target's Debian arch, kharness's /init, the kernel modules the
board needs for its command channel) is gzip-compressed once and cached by content. The modules
under test travel in a small uncompressed cpio appended after it: the kernel unpacks concatenated
archives in order, so a run costs one small write, not a rebuild.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from kharness import seal, ui
from kharness.debian.deb import extract_deb
from kharness.debian.index import load_index
from kharness.debian.pool import fetch_pkg
from kharness.hw.agent import build_agent
from kharness.image.cpio import CpioWriter
from kharness.kernels.store import KernelBundle
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir, data_dir
from kharness.targets import TargetProfile

FORMAT = "1"  # bump when the layout of the base image changes
BUSYBOX_SUITE = "bookworm"
GUEST_MODULE_DIR = "lib/kh-guest"
PAYLOAD_DIR = "kh"


@dataclass(frozen=True)
class BaseImage:
    path: Path          # initramfs.cpio.gz
    key: str
    busybox: dict       # package record of the busybox used


def busybox_binary(profile: TargetProfile) -> tuple[bytes, dict]:
    """(the static busybox for the target, the package record it came from), cached."""
    if profile.busybox == "source":
        from kharness.image.busybox_source import build_busybox
        return build_busybox(profile)
    pkg = load_index(BUSYBOX_SUITE, profile.debian_arch).get("busybox-static")
    if pkg is None:
        from kharness.errors import InfraError
        raise InfraError(f"busybox-static not found in {BUSYBOX_SUITE}/{profile.debian_arch}")
    deb = fetch_pkg(pkg)
    root = cache_dir() / "busybox" / pkg.sha256
    with file_lock(root.with_name(root.name + ".lock")):
        if not seal.usable(root, "busybox"):
            with staging_dir(root) as tmp:
                extract_deb(deb, tmp, lambda p: p in ("bin/busybox", "usr/bin/busybox"))
                seal.seal(tmp, pkg.to_dict())
    binary = next(p for p in (root / "bin/busybox", root / "usr/bin/busybox") if p.exists())
    return binary.read_bytes(), pkg.to_dict()


def ensure_base_image(profile: TargetProfile, kernel: KernelBundle) -> BaseImage:
    busybox, bb_pkg = busybox_binary(profile)
    images = data_dir("images")
    init = (images / "init.sh").read_bytes()
    dmesg_since = (images / "kh-dmesg-since").read_bytes()
    mods = [(p.name, p.read_bytes()) for p in kernel.guest_modules]
    agent = build_agent(profile).read_bytes()   # ioctl and exact read/write for the checks
    h = hashlib.sha256()
    for part in (FORMAT.encode(), busybox, init, dmesg_since, agent,
                 *(n.encode() + b"\0" + d for n, d in mods)):
        h.update(hashlib.sha256(part).digest())
    key = h.hexdigest()[:16]
    final = cache_dir() / "images" / f"{profile.name}-{kernel.release}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "image"):
            with staging_dir(final) as tmp, ui.step(f"building the {profile.name} initramfs"):
                w = CpioWriter()
                for d in ("bin", "dev", "etc", "lib", GUEST_MODULE_DIR, "proc", "sys", "tmp", "root", PAYLOAD_DIR):
                    w.dir(d)
                w.chardev("dev/console", 5, 1)
                w.file("bin/busybox", busybox, 0o755)
                w.symlink("bin/sh", "busybox")
                w.file("init", init, 0o755)
                w.file("bin/kh-dmesg-since", dmesg_since, 0o755)
                w.file("bin/kh-agent", agent, 0o755)
                order = []
                for i, (name, data) in enumerate(mods):
                    fname = f"{i:02d}-{name}"
                    w.file(f"{GUEST_MODULE_DIR}/{fname}", data)
                    order.append(fname)
                w.file(f"{GUEST_MODULE_DIR}/order", ("\n".join(order) + "\n").encode() if order else b"")
                data = gzip.compress(w.getvalue(), compresslevel=6, mtime=0)
                data += b"\0" * ((4 - len(data) % 4) % 4)  # the next archive starts 4-byte aligned
                (tmp / "initramfs.cpio.gz").write_bytes(data)
                (tmp / "image.json").write_text(json.dumps({
                    "target": profile.name, "release": kernel.release, "busybox": bb_pkg,
                    "guest_modules": [n for n, _ in mods]}, indent=1))
                seal.seal(tmp)
    return BaseImage(path=final / "initramfs.cpio.gz", key=key, busybox=bb_pkg)


PROGRAM_DIR = "bin/"      # payload names under it are programs: executable in the guest


def payload_mode(name: str) -> int:
    """The permissions of payload file ``name`` in the guest: programs (``bin/...``) run."""
    return 0o755 if name.startswith(PROGRAM_DIR) else 0o644


def _payload_archive(files: dict[str, bytes], prefix: str) -> bytes:
    """``files`` ({name under /kh: bytes}) as an uncompressed cpio, each name under ``prefix``.
    The kernel (and busybox cpio) make no missing parent directory: each has its own entry,
    before its files. Deterministic: the same files give the same bytes."""
    w = CpioWriter()
    made: set[str] = set()
    for name, data in sorted(files.items()):
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"payload name {name!r} must stay under {PAYLOAD_DIR}")
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                w.dir(prefix + d)
                made.add(d)
        w.file(prefix + name, data, payload_mode(name))
    return w.getvalue()


def bundle(files: dict[str, bytes], compressed: bool = True) -> bytes:
    """The run's files for a running guest: a cpio, gzip-compressed for a slow channel (a
    guest's virtio console), the stdin of ``agent_client.unpack_command()`` (which unpacks it in
    /kh)."""
    archive = _payload_archive(files, "")
    return gzip.compress(archive, 6, mtime=0) if compressed else archive   # level 9: 10x the time, 0.3% smaller


def payload_cpio(files: dict[str, bytes]) -> bytes:
    """The run's files for a cold boot's initrd: an uncompressed cpio with them under /kh (the
    modules under test, programs under ``bin/``, executable)."""
    return _payload_archive(files, f"{PAYLOAD_DIR}/")


def write_run_initrd(base: BaseImage, files: dict[str, bytes], dest: Path) -> Path:
    dest.write_bytes(base.path.read_bytes() + payload_cpio(files))
    return dest


_busybox = busybox_binary   # the name bench/bench_targets.py imports
