"""The initramfs of a distro guest: busybox, the kernel modules that reach the disks, and an /init
(images/init-distro.sh) that mounts the root and modules disks and switch_roots to systemd.

The modules are the profile's ``distro_initrd_modules`` with what the kernel's modules.dep and
modules.softdep say they need (ext4 wants crc16, mbcache, jbd2 and a crc32c driver), in load
order, as :func:`kharness.kernels.modtree.dependency_chain` gives them for modules under test.
Cached per target, kernel and content under ``cache_dir()/distro/initrd/``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Callable

from kharness import seal, ui
from kharness.image.cpio import CpioWriter
from kharness.image.initramfs import GUEST_MODULE_DIR, busybox_binary
from kharness.kernels.modstore import payload_paths, tree_marker
from kharness.kernels.modtree import ModuleTree, dependency_chain
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir, data_dir
from kharness.targets import TargetProfile

FORMAT = "2"
IMAGE = "initrd.cpio.gz"


def initrd_modules(profile: TargetProfile, tree: ModuleTree) -> list[tuple[str, Path, bool]]:
    """``[(file name, module file, soft)]`` to insmod in this order (built-in ones need nothing).
    ``soft``: only a soft dependency, which may fail to load (crc32c-intel on a CPU without
    SSE4.2, where crc32c_generic serves)."""
    chain = dependency_chain(tree, {n: f"the {profile.name} distro guest's disks"
                                    for n in profile.distro_initrd_modules})
    files = payload_paths(chain)
    return [(c.guest_file, files[c.guest_file], c.soft) for c in chain]


def ensure_distro_initrd(profile: TargetProfile, release: str, moddir: Path,
                         tree: Callable[[], ModuleTree]) -> tuple[Path, str]:
    """(the cached initramfs, its key). ``moddir`` is the kernel's module tree (from
    kharness.kernels.modstore.modules_dir); ``tree`` reads its indexes, which only a build needs:
    the key comes from what decides the content (the tree's seal, the module names asked for),
    so that a run with everything cached does not resolve the chain again (0.2 s)."""
    busybox, bb_pkg = busybox_binary(profile)
    init = (data_dir("images") / "init-distro.sh").read_bytes()
    h = hashlib.sha256()
    for part in (FORMAT.encode(), busybox, init, release.encode(), tree_marker(moddir),
                 "\0".join(profile.distro_initrd_modules).encode()):
        h.update(hashlib.sha256(part).digest())
    key = h.hexdigest()[:16]
    final = cache_dir() / "distro" / "initrd" / f"{profile.name}-{release}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "distro initramfs"):
            mods = [(name, path.read_bytes(), soft) for name, path, soft in initrd_modules(profile, tree())]
            with staging_dir(final) as tmp, ui.step(f"building the {profile.name} distro initramfs"):
                w = CpioWriter()
                for d in ("bin", "dev", "etc", "lib", GUEST_MODULE_DIR, "proc", "sys", "newroot"):
                    w.dir(d)
                w.chardev("dev/console", 5, 1)
                w.file("bin/busybox", busybox, 0o755)
                w.symlink("bin/sh", "busybox")
                w.file("init", init, 0o755)
                order = []
                for i, (name, data, soft) in enumerate(mods):
                    fname = f"{i:02d}-{name}"
                    w.file(f"{GUEST_MODULE_DIR}/{fname}", data)
                    order.append(f"{fname} soft" if soft else fname)   # /init says nothing of a soft one
                w.file(f"{GUEST_MODULE_DIR}/order", ("\n".join(order) + "\n").encode() if order else b"")
                (tmp / IMAGE).write_bytes(gzip.compress(w.getvalue(), compresslevel=6, mtime=0))
                (tmp / "image.json").write_text(json.dumps({
                    "target": profile.name, "release": release, "busybox": bb_pkg,
                    "modules": [n for n, _, _ in mods]}, indent=1))
                seal.seal(tmp)
    return final / IMAGE, key
