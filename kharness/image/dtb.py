"""The device tree a board boots with: the kernel package's own, plus the profile's fixups.

Example: the Raspberry Pi 2's tree ships the mini-UART disabled (on the real board it is free
for the user); kharness enables it to carry the command channel. Fixups are applied with
``fdtput`` on a copy, cached by the content of the tree and the fixups.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from kharness import proc
from kharness.errors import InfraError, UsageError
from kharness.lock import file_lock
from kharness.paths import cache_dir


def prepare_dtb(dtb_dir: Path | None, name: str, fixups: tuple, release: str) -> Path:
    if dtb_dir is None or not (dtb_dir / name).is_file():
        raise UsageError(f"kernel {release} ships no device tree {name}")
    src = dtb_dir / name
    if not fixups:
        return src
    data = src.read_bytes()
    key = hashlib.sha256(data + json.dumps(fixups).encode()).hexdigest()[:16]
    out = cache_dir() / "dtbs" / f"{Path(name).stem}-{key}.dtb"
    with file_lock(out.with_suffix(".lock")):
        if out.exists():
            return out
        fdtput = shutil.which("fdtput")
        if fdtput is None:
            raise InfraError("fdtput is not installed (needed to adapt the board's device tree)",
                             hint="run `kharness doctor --install` (device-tree-compiler)")
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        for node, prop, value in fixups:
            p = proc.run([fdtput, "-t", "s", str(tmp), node, prop, value], timeout=60, what="fdtput")
            if p.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise InfraError(f"cannot set {node} {prop}={value} in {name}: {p.stderr.strip()}")
        os.replace(tmp, out)
    return out
