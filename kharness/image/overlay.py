"""A base initramfs with files added under /kh, cached by content: the kernel's own modules a
run needs (kharness.kernels.modstore.payload_for) and its programs, when sending them to a
restored guest would take longer than booting one that has them (kharness.runner.image.rides_along:
a videodev chain over the Raspberry Pis' ~20 KB/s mini-UART).

The guest's ready snapshot holds them: its key follows the image's identity
(kharness.vm.snapshot.snapshot_key), so the first run with given files saves a snapshot of its
own and every later run restores it with the files in place. Over a faster channel they are sent
once instead and the guest saved with them (kharness.vm.snapshot.save_derived).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from kharness import seal
from kharness.image.initramfs import BaseImage, payload_cpio
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir

FILENAME = "initramfs.cpio.gz"


def files_key(files: dict[str, bytes]) -> str:
    """A digest of the names and contents of ``files``."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return h.hexdigest()[:16]


def with_files(base: BaseImage, files: dict[str, bytes]) -> BaseImage:
    """``base`` with ``files`` appended under /kh (a second cpio archive, which the kernel
    unpacks after the first), made once per content and never rewritten in place (the snapshot
    key reads its path, size and mtime)."""
    if not files:
        return base
    key = f"{base.key}-{files_key(files)}"
    final = cache_dir() / "images-with" / key
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "image with the kernel's modules"):
            with staging_dir(final) as tmp:
                (tmp / FILENAME).write_bytes(Path(base.path).read_bytes() + payload_cpio(files))
                seal.seal(tmp, {"base": str(base.path), "files": sorted(files)})
    return BaseImage(path=final / FILENAME, key=key, busybox=base.busybox)
