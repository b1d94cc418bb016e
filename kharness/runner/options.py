"""What a run is asked to do (the command line's options), and the command that repeats it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT = 60.0        # per guest step (an insmod, a check, an rmmod)
DEFAULT_BOOT_TIMEOUT = 300.0  # TCG on a loaded 2-core machine can be slow; a healthy boot is ~3 s


@dataclass
class RunOptions:
    module_dir: Path
    target: str = "x86_64"
    kernel: str | None = None
    params: list[str] = field(default_factory=list)
    timeout: float | None = None
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT
    accel: str = "auto"
    keep: bool = False
    kernel_tree: Path | None = None          # build the kernel from this source tree instead
    kernel_config: list[Path] = field(default_factory=list)  # extra config fragments for it
    cold: bool = False                       # always boot; never restore a snapshot
    debug: tuple[str, ...] | str = ()        # debug checkers ("kasan,ubsan" or a tuple): boot a kernel built with them


def reproducer_cmd(opts: RunOptions, release: str | None) -> str:
    """The `kharness run` command line that repeats this run (on ``release`` once it is known)."""
    argv = ["kharness", "run", str(opts.module_dir), "--target", opts.target]
    if release or opts.kernel:
        argv += ["--kernel", release or opts.kernel]
    for p in opts.params:
        argv += ["--param", p]
    if opts.debug:
        argv += ["--debug", opts.debug if isinstance(opts.debug, str) else ",".join(opts.debug)]
    if opts.timeout:
        argv += ["--timeout", f"{opts.timeout:g}"]
    if opts.kernel_tree:
        argv += ["--kernel-tree", str(opts.kernel_tree)]
        for c in opts.kernel_config:
            argv += ["--kernel-config", str(c)]
    return shlex.join(argv)
