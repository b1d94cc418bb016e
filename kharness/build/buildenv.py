"""Build environments: a Debian sysroot of the kernel's own suite, for kernels the host cannot build.

sid's 7.2 (gcc-16) and trixie's 6.12 (gcc-14) headers use compiler flags bookworm's gcc-12 does not
know, and their kbuild tools need a newer glibc. So kharness builds those modules inside a minimal
Debian root of the kernel's suite, made once with mmdebstrap (apt verifies every package against
the archive keyring) and entered with bubblewrap, rootless where user namespaces allow. Each
series then builds with the compiler it was built with, on any host distribution.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from kharness import proc, seal, ui
from kharness.debian.mirror import debian_mirror
from kharness.errors import InfraError
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir

BASE_PACKAGES = ("make", "libc6-dev")
# mmdebstrap downloads and installs a few hundred MB: minutes on a good link. Past this the
# whole process group (apt, dpkg, their children) is killed.
SYSROOT_TIMEOUT = 3600


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InfraError(f"{tool} is not installed (needed for the build environment of this kernel)",
                         hint=f"run `kharness doctor --install` ({package})")
    return path


def ensure_sysroot(suite: str, packages: tuple[str, ...]) -> Path:
    """A minbase Debian ``suite`` root with ``packages`` installed, cached by its recipe."""
    pkgs = tuple(sorted(set(BASE_PACKAGES) | set(packages)))
    key = hashlib.sha256("\n".join((suite, *pkgs)).encode()).hexdigest()[:12]
    final = cache_dir() / "sysroots" / f"{suite}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if seal.usable(final, "build environment", adopt=lambda: _seal(final, suite)):
            return final
        mmdebstrap = _need("mmdebstrap", "mmdebstrap")
        with staging_dir(final) as tmp:
            root = tmp / "root"
            cmd = [mmdebstrap, "--variant=minbase", "--mode=auto", "--quiet",
                   # Snapshot mirrors serve Release files past their Valid-Until date; the
                   # signature is still checked, only the expiry is not.
                   "--aptopt=Acquire::Check-Valid-Until \"false\"",
                   f"--include={','.join(pkgs)}", suite, str(root), debian_mirror()]
            with ui.step(f"creating the {suite} build environment ({', '.join(pkgs)})"):
                p = proc.run(cmd, timeout=SYSROOT_TIMEOUT, what=f"creating the {suite} build environment")
            if p.returncode != 0:
                tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-5:])
                raise InfraError(f"could not create the {suite} build environment: {tail}")
            (tmp / "recipe.txt").write_text("\n".join((suite, *pkgs)) + "\n")
            _seal(tmp, suite)
    return final


def _seal(entry: Path, suite: str) -> None:
    """Seal a build environment with what apt installed in it, for the results (the root holds
    10^4 files: the seal covers the package database and the tools a build runs)."""
    root = entry / "root"
    q = proc.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                  "-f=${Package} ${Version} ${Architecture}\n"], timeout=120, what="dpkg-query")
    installed = sorted(line for line in q.stdout.splitlines() if line.strip())
    key_files = ["recipe.txt", "root/var/lib/dpkg/status", "root/usr/bin/make"]
    key_files += sorted(str(p.relative_to(entry)) for p in (root / "usr/bin").glob("*gcc-[0-9]*")
                        if p.is_file() and not p.is_symlink())
    seal.seal(entry, {"suite": suite, "packages": installed}, only=[k for k in key_files if (entry / k).exists()])


def wrap(sysroot: Path, argv: list[str], *, cwd: Path, rw: list[Path], ro: list[Path],
         env: dict[str, str]) -> list[str]:
    """``argv`` run inside ``sysroot`` with the given host paths visible at the same place."""
    bwrap = _need("bwrap", "bubblewrap")
    # /proc is needed: 7.2's objtool reads the stack limit from it.
    out = [bwrap, "--bind", str(sysroot / "root"), "/", "--proc", "/proc", "--dev", "/dev",
           "--tmpfs", "/tmp", "--die-with-parent", "--unshare-ipc", "--unshare-pid"]
    seen: set[str] = set()
    for p in ro:
        if str(p) not in seen and p.exists():
            out += ["--ro-bind", str(p), str(p)]
            seen.add(str(p))
    for p in rw:
        if str(p) not in seen:
            out += ["--bind", str(p), str(p)]
            seen.add(str(p))
    out += ["--chdir", str(cwd), "--clearenv"]
    for k, v in env.items():
        out += ["--setenv", k, v]
    return out + argv


def run_in(sysroot: Path, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = wrap(sysroot, argv, cwd=Path("/"), rw=[], ro=[], env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    return proc.run(cmd, timeout=timeout, what=f"`{argv[0]}` in the build environment")
