"""The root filesystem of a distro guest: Debian made by mmdebstrap, as a raw ext4 image.

Cached by content under ``cache_dir()/distro/rootfs/<suite>-<arch>-<key>/root.ext4``: the key
covers the suite, the architecture, the package list, kharness's SSH keys (baked in), the
customization scripts and :data:`FORMAT`. The image is never written once sealed: each guest
boots a qcow2 overlay on it.

Two ways to make one, both rootless where user namespaces allow (mmdebstrap's unshare mode):

* **native** (the host runs the target's binaries): mmdebstrap installs the packages (their
  maintainer scripts run on the host, in the chroot), a hook customizes the tree and writes it into
  an ext4 image with ``mke2fs -d`` (ownership as in the chroot: the hook runs as its root);
* **foreign** (arm64 on an x86_64 host without binfmt_misc): mmdebstrap only unpacks the packages
  (``--variant=extract``) and keeps the .debs in the image; a one-time first boot of the guest's
  own kernel then runs ``dpkg --install`` inside it (``kh_configure``, see images/init-distro.sh and
  images/kh-configure.sh), and powers off. The configured image is what is sealed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Callable

from kharness import hostarch, proc, seal, sshkeys, ui
from kharness.debian.mirror import debian_mirror
from kharness.errors import InfraError, UsageError
from kharness.lock import file_lock, staging_dir
from kharness.paths import cache_dir, data_dir
from kharness.targets import TargetProfile

FORMAT = "1"    # bump when the image's layout or recipe changes in a way the scripts do not show
IMAGE = "root.ext4"
LABEL = "kh-root"
# mmdebstrap fetches and installs ~150 packages: half a minute on a good link, minutes on a slow
# one. Past this its whole process group (apt, dpkg, the hooks) is killed.
MMDEBSTRAP_TIMEOUT = 1800.0
# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters, starting
# with a letter or digit.
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
SCRIPTS = ("distro-customize.sh", "kh-configure.sh", "distro-mke2fs.conf")

# Called for a foreign root: boot the unpacked image once in configure mode (distro.py does it:
# it knows the kernel, the initramfs and the modules disk).
Configure = Callable[[Path], None]


def check_packages(names: tuple[str, ...] | list[str], where: str = "--guest-packages") -> tuple[str, ...]:
    """``names`` if each is a Debian package name, else a UsageError naming the first bad one."""
    for n in names:
        if not _PACKAGE_RE.fullmatch(n):
            raise UsageError(f"{where}: {n!r} is not a Debian package name",
                             hint="names are lower case letters, digits and + - . (e.g. v4l-utils,i2c-tools)")
    return tuple(names)


def native(profile: TargetProfile) -> bool:
    """Whether mmdebstrap can run the target's maintainer scripts on this host."""
    return hostarch.native(profile.debian_arch)


def recipe(profile: TargetProfile, suite: str, packages: tuple[str, ...]) -> dict:
    """Everything the image is made from (its cache key is this, hashed)."""
    images = data_dir("images")
    return {
        "format": FORMAT, "suite": suite, "arch": profile.debian_arch,
        "method": "native" if native(profile) else "foreign",
        "packages": sorted(set(packages)),
        "client_key": sshkeys.client_key()[1], "host_key": sshkeys.guest_host_key()[1],
        # A foreign root is configured by the distro initramfs's /init too.
        "scripts": {n: hashlib.sha256((images / n).read_bytes()).hexdigest()
                    for n in SCRIPTS + (() if native(profile) else ("init-distro.sh",))},
    }


def ensure_rootfs(profile: TargetProfile, suite: str, packages: tuple[str, ...],
                  configure: Configure) -> tuple[Path, str]:
    """(the cached root image, its key), made if missing."""
    r = recipe(profile, suite, packages)
    key = hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest()[:16]
    final = cache_dir() / "distro" / "rootfs" / f"{suite}-{profile.debian_arch}-{key}"
    with file_lock(final.with_name(final.name + ".lock")):
        if not seal.usable(final, "distro root filesystem"):
            with staging_dir(final) as tmp:
                image = tmp / IMAGE
                how = "" if native(profile) else ", unpacked for a first boot"
                with ui.step(f"building the Debian {suite} {profile.debian_arch} root filesystem "
                             f"({len(r['packages'])} packages{how})"):
                    _mmdebstrap(profile, suite, r["packages"], image)
                if not native(profile):
                    with ui.step(f"configuring the {suite} {profile.debian_arch} root filesystem "
                                 "in its first boot (TCG: minutes)"):
                        configure(image)
                (tmp / "recipe.json").write_text(json.dumps(r, indent=1, sort_keys=True))
                seal.seal(tmp, {"suite": suite, "arch": profile.debian_arch})
    return final / IMAGE, key


def host_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)
    if path is None:
        raise InfraError(f"{name} is not installed (needed to build a distro guest)",
                         hint=f"run `kharness doctor --install` ({package})")
    return path


def mke2fs_hook(image: Path, label: str) -> str:
    """A hook (shell; ``$1`` is the root) writing the root into ``image``: ext4, labelled ``label``,
    sized to the tree plus room for a guest's files. The tree is bind-mounted first, without
    recursion: mmdebstrap has /proc, /sys and /dev mounted in it, which must not be copied."""
    conf = data_dir("images") / "distro-mke2fs.conf"
    mke2fs = host_tool("mke2fs", "e2fsprogs")
    inner = ('mount --bind "$1" "$2" && sz=$(du -smx "$2" | cut -f1) && '
             f'MKE2FS_CONFIG={shlex.quote(str(conf))} {shlex.quote(mke2fs)} -q -t ext4 -L {label} '
             f'-d "$2" {shlex.quote(str(image))} "$((sz + sz / 2 + 768))M"')
    return (f'd=$(mktemp -d) && unshare -m sh -c {shlex.quote(inner)} sh "$1" "$d"; '
            'rc=$?; rmdir "$d"; exit $rc')


def _mmdebstrap(profile: TargetProfile, suite: str, packages: list[str], image: Path) -> None:
    mmdebstrap = host_tool("mmdebstrap", "mmdebstrap")
    host_tool("mke2fs", "e2fsprogs")
    images = data_dir("images")
    client_pub = image.parent / "client.pub"
    client_pub.write_text(sshkeys.client_key()[1] + "\n")
    host_key, host_pub_line = sshkeys.guest_host_key()
    host_pub = image.parent / "host.pub"
    host_pub.write_text(host_pub_line + "\n")
    foreign = not native(profile)
    customize = (f'sh {shlex.quote(str(images / "distro-customize.sh"))} "$1" '
                 f'{shlex.quote(str(client_pub))} {shlex.quote(str(host_key))} '
                 f'{shlex.quote(str(host_pub))} {1 if foreign else 0}')
    cmd = [mmdebstrap, "--mode=unshare", f"--arch={profile.debian_arch}",
           # Snapshot mirrors serve Release files past their Valid-Until date; the signature is
           # still checked, only the expiry is not.
           "--aptopt=Acquire::Check-Valid-Until \"false\""]
    if foreign:
        # Unpacked only (the host cannot run the target's maintainer scripts): the essential set
        # and the packages with their dependencies; the .debs stay in the image for its first boot.
        extra = images / "kh-configure.sh"
        cmd += ["--variant=extract", "--include=?essential",   # an apt pattern: an --include of its own (mmdebstrap
                # does not split a list that holds one)
                f"--include={','.join(packages)}",
                f"--extract-hook={customize}",
                f"--extract-hook=upload {extra} /kh-configure.sh",
                f"--extract-hook={_essential_list_hook()}",
                f"--extract-hook={mke2fs_hook(image, LABEL)}"]
    else:
        cmd += ["--variant=minbase", f"--include={','.join(packages)}",
                f"--customize-hook={customize}",
                f"--customize-hook={mke2fs_hook(image, LABEL)}"]
    cmd += [suite, "/dev/null", f"deb {debian_mirror()} {suite} main"]
    p = proc.run(cmd, timeout=MMDEBSTRAP_TIMEOUT, what=f"mmdebstrap ({suite}, {profile.debian_arch})",
                 merge_stderr=True)
    if p.returncode != 0 or not image.is_file():
        missing = re.findall(r"^E: Unable to locate package (\S+)", p.stdout, re.M)
        if missing:   # a name that passed the syntax check but that the archive does not have
            raise UsageError(f"--guest-packages: Debian {suite} has no package {missing[0]!r} for "
                             f"{profile.debian_arch}", hint="check the name (apt-cache search) and the suite")
        tail = _why(p.stdout)
        raise InfraError(f"mmdebstrap could not build the {suite} {profile.debian_arch} root filesystem "
                         f"(exit {p.returncode}): {tail}",
                         hint="check the mirror (KHARNESS_DEBIAN_MIRROR) and the package names")
    client_pub.unlink()
    host_pub.unlink()


def _why(output: str) -> str:
    """What in mmdebstrap's output says why it failed: apt's own errors (``E: Unable to locate
    package ...``) rather than mmdebstrap's summary of the command that failed, else the end."""
    lines = [line.strip() for line in output.strip().splitlines()]
    errors = [line for line in lines if line.startswith(("E: ", "W: "))
              and not re.match(r"E: (setup failed|mmdebstrap failed|apt download failed|.*\bfailed$)", line)]
    return " | ".join(errors[:3] or lines[-4:])[:600]


def _essential_list_hook() -> str:
    """A hook writing /kh-essential.list: the unpacked .debs of Essential packages (the first
    boot installs them first, as mmdebstrap's own essential step does)."""
    return ('cd "$1/var/cache/apt/archives" && for f in *.deb; do '
            'if [ "$(dpkg-deb -f "$f" Essential)" = yes ]; then echo "$f"; fi; done > "$1/kh-essential.list"')
