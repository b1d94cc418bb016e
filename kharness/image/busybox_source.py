"""A static busybox built from Debian's busybox source, for targets Debian has no binary for
(big-endian ppc64). The orig tarball is verified against the signed-off Sources index; the
build is ``defconfig`` + ``CONFIG_STATIC=y`` (and the full modutils, not the "small" ones) with the
target's cross compiler (~1 minute)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile

from kharness import proc, seal, ui
from kharness.debian.download import fetch_verified
from kharness.debian.index import load_sources
from kharness.debian.mirror import debian_mirror
from kharness.errors import InfraError
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir
from kharness.targets import TargetProfile

SUITE = "bookworm"
# About a minute on an idle host; generous for a loaded one (the whole group is killed past it).
BUILD_TIMEOUT = 1800
CONFIG_TIMEOUT = 300


def build_busybox(profile: TargetProfile) -> tuple[bytes, dict]:
    src = load_sources(SUITE).get("busybox")
    if src is None:
        raise InfraError(f"busybox is not in the {SUITE} Sources index")
    orig = next((f for f in src.files if f[2].endswith((".orig.tar.bz2", ".orig.tar.xz", ".orig.tar.gz"))), None)
    if orig is None:
        raise InfraError("no orig tarball in the busybox source package")
    pkg = src.file_pkg(orig[2])
    key = hashlib.sha256(f"{pkg.sha256} {profile.cross_compile} static-defconfig-2".encode()).hexdigest()[:12]
    final = cache_dir() / "busybox-builds" / f"{profile.name}-{key}"
    record = {**pkg.to_dict(), "built_with": profile.cross_compile + "gcc", "config": "defconfig + CONFIG_STATIC, full modutils"}
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "busybox build"):
            cc = shutil.which(f"{profile.cross_compile}gcc")
            if cc is None:
                raise InfraError(f"{profile.cross_compile}gcc is not installed", hint="run `kharness doctor --install`")
            tarball = cache_dir() / "debs" / f"{pkg.sha256}-{pkg.name}"
            tarball.parent.mkdir(parents=True, exist_ok=True)
            fetch_verified(pkg.url(debian_mirror()), tarball, sha256=pkg.sha256, size=pkg.size,
                           label=f"busybox source {src.version}")
            with staging_dir(final) as tmp, ui.step(f"building a static busybox for {profile.name} (about a minute)"):
                with tarfile.open(tarball) as tf:
                    tf.extractall(tmp, filter="data")
                top = next(d for d in tmp.iterdir() if d.is_dir())
                env = dict(os.environ, LC_ALL="C")
                env.pop("MAKEFLAGS", None)
                make = ["make", "-C", str(top), f"CROSS_COMPILE={profile.cross_compile}"]
                log = []
                for args in (["defconfig"],):
                    p = proc.run(make + args, timeout=CONFIG_TIMEOUT, env=env, what="busybox `make defconfig`")
                    log.append(p.stdout + p.stderr)
                cfg = top / ".config"
                text = cfg.read_text()
                text = re.sub(r"^# CONFIG_STATIC is not set$", "CONFIG_STATIC=y", text, flags=re.M)
                # The full insmod, as Debian's busybox has: the "small" one wraps every parameter in
                # quotes of its own, so a value with spaces (greeting="hi there") arrives cut off.
                text = re.sub(r"^CONFIG_MODPROBE_SMALL=y$", "# CONFIG_MODPROBE_SMALL is not set", text, flags=re.M)
                # Applets that need kernel headers or libraries a cross libc may lack, and that
                # kharness's guest never uses.
                for opt in ("CONFIG_TC", "CONFIG_FEATURE_TC_INGRESS", "CONFIG_NSENTER", "CONFIG_FEATURE_MOUNT_NFS"):
                    text = re.sub(rf"^{opt}=y$", f"# {opt} is not set", text, flags=re.M)
                cfg.write_text(text)
                p = proc.run(make + ["oldconfig"], timeout=CONFIG_TIMEOUT, env=env, input="\n" * 200,
                             what="busybox `make oldconfig`")
                p = proc.run(make + [f"-j{os.cpu_count() or 2}", "busybox"], timeout=BUILD_TIMEOUT, env=env,
                             what=f"the busybox build for {profile.name}")
                log.append(p.stdout + p.stderr)
                (tmp / "build.log").write_text("\n".join(log))
                if p.returncode != 0 or not (top / "busybox").is_file():
                    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-10:])
                    raise InfraError(f"busybox build for {profile.name} failed:\n{tail}")
                shutil.copy2(top / "busybox", tmp / "busybox")
                shutil.rmtree(top)
                seal.seal(tmp, record)
    return (final / "busybox").read_bytes(), record
