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
    # The guest around the module: "busybox" (kharness's initramfs) or "debian" (a Debian root
    # filesystem with systemd, udev and sshd, driven over SSH: kharness.vm.distro_guest).
    guest: str = "busybox"
    guest_packages: tuple[str, ...] = ()     # Debian packages added to a distro guest
    guest_suite: str | None = None           # its Debian suite (default: the kernel's own: bookworm for 6.1)
    # A board (or any machine) over SSH instead of a guest: "user@host[:port]" (runner.remote).
    remote: str | None = None
    identity: Path | None = None             # its SSH key (else the SSH agent and ~/.ssh keys)
    accept_new_host_key: bool = False        # an unknown host key is added to known_hosts (a changed one never)
    known_hosts: Path | None = None          # the known_hosts file (default ~/.ssh/known_hosts)
    target_given: bool = False               # --target was given (with --remote: it must fit the board)
    build_on_remote: bool = False            # with --remote: build on the board against its own headers
    # With --remote: the board kernel's kbuild tree on the host (kharness.kernels.hosttree); with
    # --remote, --kernel-tree means that too (the board's kernel source, built by the user).
    headers: Path | None = None

    @property
    def host_tree(self) -> tuple[str, Path] | None:
        """With --remote: (the option, the directory) of the board kernel's tree on the host."""
        if not self.remote:
            return None
        if self.headers is not None:
            return "--headers", self.headers
        return ("--kernel-tree", self.kernel_tree) if self.kernel_tree is not None else None

    @property
    def board_modules(self) -> bool:
        """The board's own kernel modules serve what the modules need (``depends=``, ``[module]
        requires``): no Debian module tree is there to take them from."""
        return self.build_on_remote or self.host_tree is not None


GUESTS = ("busybox", "debian")


def reproducer_cmd(opts: RunOptions, release: str | None) -> str:
    """The `kharness run` command line that repeats this run (on ``release`` once it is known)."""
    argv = ["kharness", "run", str(opts.module_dir)]
    if opts.remote:
        argv += ["--remote", opts.remote]
        if opts.identity:
            argv += ["--identity", str(opts.identity)]
        if opts.build_on_remote:
            argv += ["--build-on-remote"]
        if opts.headers:
            argv += ["--headers", str(opts.headers)]
    else:
        argv += ["--target", opts.target]
    if opts.guest != "busybox":
        argv += ["--guest", opts.guest]
    if opts.guest_packages:
        argv += ["--guest-packages", ",".join(opts.guest_packages)]
    if (release or opts.kernel) and not opts.remote:   # a board runs the kernel it runs
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
