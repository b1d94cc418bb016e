"""The modules disk of a distro guest: the kernel's whole module tree, depmod'ed, as an ext4 image.

The guest mounts it read-only on ``/lib/modules``, so ``modprobe``, udev's autoloading and
``modinfo`` see the real tree of the kernel that boots, whatever root filesystem it boots with
(one root image serves every kernel of its suite). Made once per kernel under
``cache_dir()/distro/modules/<release>-<key>/modules.ext4`` from the module tree cache entry
(:func:`kharness.kernels.modstore.modules_dep`, where depmod already ran); ``mke2fs -d`` needs no
root (the files belong to the user who made them: the disk is read-only, and read by root).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from kharness import proc, seal, ui
from kharness.errors import InfraError
from kharness.image.rootfs import host_tool
from kharness.lock import file_lock, staging_dir
from kharness.kernels.modstore import tree_marker
from kharness.paths import cache_dir, data_dir

FORMAT = "2"   # 2: <release>/build links to the headers package
IMAGE = "modules.ext4"
LABEL = "kh-modules"
MKE2FS_TIMEOUT = 600.0


def tree_size(top: Path) -> int:
    """Bytes the files under ``top`` take (apparent sizes, links as nothing)."""
    total = 0
    for root, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:   # another file system
        shutil.copy2(src, dst)


def ensure_modules_disk(release: str, moddir: Path) -> tuple[Path, str]:
    """(the cached modules disk for ``moddir`` = ``.../lib/modules/<release>``, its key)."""
    if not (moddir / "modules.dep").is_file():
        raise InfraError(f"{moddir} has no modules.dep: not a depmod'ed module tree")
    # The module tree's own seal names its content: its hash is this disk's key.
    h = hashlib.sha256(FORMAT.encode())
    h.update(release.encode())
    h.update(tree_marker(moddir))
    h.update((data_dir("images") / "distro-mke2fs.conf").read_bytes())
    key = h.hexdigest()[:16]
    final = cache_dir() / "distro" / "modules" / f"{release}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "distro modules disk"):
            mke2fs = host_tool("mke2fs", "e2fsprogs")
            with staging_dir(final) as tmp, ui.step(f"writing the modules disk of {release}"):
                # The disk's root is /lib/modules: it holds <release>/ (and nothing else: the
                # tree's cache entry keeps its seal one level up).
                size_mb = tree_size(moddir) // (1 << 20) * 5 // 4 + 64   # ext4's metadata, some slack
                # <release>/build -> the headers package's tree, as the linux-image package has
                # it: a guest with linux-headers-<release> installed builds modules as a board
                # does (`make -C /lib/modules/$(uname -r)/build`); it dangles without them. The
                # disk's tree is a hard-linked copy: the cached module tree stays as sealed.
                root = tmp / "tree"
                shutil.copytree(moddir, root / release, symlinks=True, copy_function=_link_or_copy)
                for name in ("build", "source"):
                    (root / release / name).unlink(missing_ok=True)
                (root / release / "build").symlink_to(f"/usr/src/linux-headers-{release}")
                p = proc.run([mke2fs, "-q", "-t", "ext4", "-O", "^has_journal", "-L", LABEL,
                              "-d", str(root), str(tmp / IMAGE), f"{size_mb}M"],
                             env={**os.environ, "MKE2FS_CONFIG": str(data_dir("images") / "distro-mke2fs.conf")},
                             timeout=MKE2FS_TIMEOUT, what=f"mke2fs (modules disk of {release})", merge_stderr=True)
                if p.returncode != 0:
                    raise InfraError(f"mke2fs could not write the modules disk of {release}: "
                                     f"{p.stdout.strip()[-300:]}")
                shutil.rmtree(root)
                seal.seal(tmp, {"release": release})
    return final / IMAGE, key
