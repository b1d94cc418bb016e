"""What a module's own build commands see: the target kernel where real Makefiles look for it,
and the user's directories read-only.

kbuild with ``M=`` needs none of this. But a module's own Makefile, a dkms.conf's ``MAKE`` and
its ``PRE_BUILD`` script were written for the machine the module is installed on: they say
``/lib/modules/$(shell uname -r)/build``, ``$(shell uname -m)``, ``/lib/modules/${kernelver}/build``.
So these commands run with

* a ``uname`` first on ``PATH`` that answers ``-r`` with the target's release and ``-m`` with the
  target's machine (as ``uname -m`` prints it there; DKMS's ``$arch`` is the same name);
* where bubblewrap works, a private ``/lib/modules`` holding only ``<release>/build``, a link to
  the headers, and the user's directories (the module's and the two above it, which the shadow
  tree links to) mounted read-only, so a rule that writes next to its sources fails instead of
  writing into the user's tree. Without bubblewrap the commands still run in the shadow copy,
  with the variables and the ``uname`` answer.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from kharness.build import buildenv
from kharness.build.makefile import SHADOW_LEVELS
from kharness.build.toolchain import Toolchain
from kharness.kernels.store import HeadersBundle

# `uname -m` on the target, by Debian architecture (DKMS on Debian takes $arch from `uname -m`).
MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l", "armel": "armv5tel",
           "ppc64el": "ppc64le", "ppc64": "ppc64", "i386": "i686", "riscv64": "riscv64", "s390x": "s390x"}
MODULES_DIRS = ("/lib/modules", "/usr/lib/modules")


def machine(tc: Toolchain) -> str:
    """``uname -m`` of the machine the module is built for."""
    return MACHINE.get(tc.debian_arch, tc.debian_arch or tc.arch)


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bubblewrap is installed and may make a mount namespace here (user namespaces allowed)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    try:
        return subprocess.run([bwrap, "--dev-bind", "/", "/", "true"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def user_top(directory: Path) -> Path:
    """The highest user directory the shadow tree links to (see kbuild.make_shadow)."""
    top = directory
    for _ in range(SHADOW_LEVELS):
        if top.parent != top and top.parent != Path("/"):
            top = top.parent
    return top


def uname_shim(bindir: Path, release: str, mach: str) -> Path:
    """``bindir/uname``: the target's answers for -r and -m, the real uname's for the rest."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "uname"
    script.write_text(
        "#!/bin/sh\n# kharness: the build runs for another kernel than the host's; say so to $(shell uname -r).\n"
        f'case "$*" in\n  -r) echo {shlex.quote(release)} ;;\n  -m|-p|-i) echo {shlex.quote(mach)} ;;\n'
        '  *) for u in /usr/bin/uname /bin/uname; do [ -x "$u" ] && exec "$u" "$@"; done; exit 127 ;;\nesac\n')
    script.chmod(0o755)
    return bindir


def _view_args(headers: HeadersBundle) -> list[str]:
    if any(str(headers.build_dir).startswith(d + "/") for d in MODULES_DIRS):
        return []   # the headers themselves live there: hiding /lib/modules would hide them
    rel = f"/lib/modules/{headers.release}"
    return ["--tmpfs", "/lib/modules", "--dir", rel, "--symlink", str(headers.build_dir), f"{rel}/build"]


def command(argv: list[str], *, tc: Toolchain, headers: HeadersBundle, bdir: Path, cwd: Path,
            user_dirs: list[Path], env: dict[str, str]) -> tuple[list[str], dict[str, str] | None]:
    """``argv`` (run in ``cwd``) wrapped for the module's own build, and the environment to give
    the process (None when the wrapper sets it). ``env`` holds what the commands should see
    besides PATH, which gets the ``uname`` shim in ``bdir`` first."""
    shim = uname_shim(bdir / "khbin", headers.release, machine(tc))
    if tc.sysroot is None:
        # The compilers' temporary files: /tmp may be one of the read-only user directories.
        (bdir / "tmp").mkdir(exist_ok=True)
        env = {**env, "TMPDIR": str(bdir / "tmp")}
    if tc.sysroot is not None:
        inner = {**env, "PATH": f"{shim}:/usr/bin:/bin", "HOME": "/tmp"}
        wrapped = buildenv.wrap(tc.sysroot, argv, cwd=cwd, rw=[bdir], ro=[headers.root, *user_dirs], env=inner)
        # The view's mounts go with the others, before the working directory and the command.
        at = wrapped.index("--chdir")
        return wrapped[:at] + _view_args(headers) + wrapped[at:], None
    outer = {**env, "PATH": f"{shim}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    if not bwrap_works():
        return argv, outer
    out = [shutil.which("bwrap") or "bwrap", "--dev-bind", "/", "/"]
    for d in user_dirs:
        if d.exists():
            out += ["--ro-bind", str(d), str(d)]
    # The build directory after the user's: it may lie inside one of them (a cache in $HOME).
    out += ["--bind", str(bdir), str(bdir), *_view_args(headers), "--die-with-parent", "--chdir", str(cwd)]
    return out + argv, outer
