"""``kharness doctor``: is this host ready to run kharness, and what would make it so.

Each thing of :mod:`kharness.hostdeps` is looked for (a command on PATH, a file), then what no
package provides: a Debian mirror to download from, a writable cache, KVM. A thing is *required*
when every run needs it or a target asked for needs it (without ``--target``: the default
target); the rest is optional (other targets, kernels kharness builds, newer kernels' build
environments). Whatever is missing is named as Debian packages, for one ``apt-get install``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kharness import hostarch, hostdeps
from kharness.errors import InfraError, KharnessError
from kharness.targets import TargetProfile

# Where depmod lives when /usr/sbin is not on a user's PATH.
SBIN = ("/usr/sbin", "/sbin")
APT_UPDATE_TIMEOUT = 600      # seconds: apt-get update reads every source's indices
APT_INSTALL_TIMEOUT = 3600    # the cross compilers and QEMU are a few hundred MB


@dataclass(frozen=True)
class Check:
    what: str
    status: str                  # "ok", "missing" (required), "optional" (missing, not required), "info"
    users: tuple[str, ...]       # targets, or hostdeps.EVERY_RUN / KERNEL_BUILDS / BUILD_ENVS
    required: bool
    package: str | None = None   # the Debian package that provides it (None: no package does)
    detail: str = ""             # where it was found, or why it is missing and the fix

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "info")


@dataclass
class Report:
    machine: str
    debian_arch: str | None
    targets: list[str]           # the targets looked at
    required_for: list[str]      # the targets whose needs decide the exit status
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    @property
    def missing_packages(self) -> list[str]:
        """Every missing thing's package, required or optional, once each, in the table's order."""
        out: list[str] = []
        for c in self.checks:
            if not c.ok and c.package and c.package not in out:
                out.append(c.package)
        return out

    def apt_argv(self) -> list[str]:
        """The one command that installs what is missing (with sudo when not root)."""
        sudo = ["sudo"] if os.geteuid() != 0 else []
        return [*sudo, "apt-get", "install", "-y", "--no-install-recommends", *self.missing_packages]

    def to_dict(self) -> dict:
        return {"host": {"machine": self.machine, "debian_arch": self.debian_arch},
                "targets": self.targets, "required_for": self.required_for, "ok": self.ok,
                "checks": [dict(asdict(c), users=list(c.users), ok=c.ok) for c in self.checks],
                "missing_packages": self.missing_packages,
                "install": " ".join(self.apt_argv()) if self.missing_packages else None}


def _file_exists(path: str) -> bool:   # (tests replace it: the files are under /usr)
    return os.path.isfile(path)


def _find_command(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        found = next((str(Path(d) / name) for d in SBIN if os.access(Path(d) / name, os.X_OK)), None)
    return found


def _look_for(need: hostdeps.Need) -> tuple[bool, str]:
    if need.command:
        found = _find_command(need.command)
        return (True, found) if found else (False, f"{need.command} not on PATH")
    path = need.path
    if need.package == "debian-archive-keyring" and os.environ.get("KHARNESS_KEYRING"):
        path = os.environ["KHARNESS_KEYRING"]
    return (True, path) if _file_exists(path) else (False, f"no {path}")


def _mirror_check() -> Check:
    from kharness.debian.mirror import ENV_VAR, NO_MIRROR_HINT, debian_mirror

    users = (hostdeps.EVERY_RUN,)
    try:
        url = debian_mirror()
    except KharnessError as e:
        return Check("Debian mirror", "missing", users, True, detail=f"{e.message}: {NO_MIRROR_HINT}")
    where = ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "the host's apt sources"
    return Check("Debian mirror", "ok", users, True, detail=f"{url} (from {where})")


def _cache_check() -> Check:
    from kharness.paths import cache_dir

    users = (hostdeps.EVERY_RUN,)
    try:
        base = cache_dir()
    except OSError as e:
        return Check("cache directory", "missing", users, True,
                     detail=f"cannot create it ({e}): set KHARNESS_CACHE to a writable directory")
    if not os.access(base, os.W_OK | os.X_OK):
        return Check("cache directory", "missing", users, True,
                     detail=f"{base} is not writable: set KHARNESS_CACHE to a writable directory")
    return Check("cache directory", "ok", users, True, detail=str(base))


def _kvm_check(profiles: list[TargetProfile]) -> Check:
    """Which accelerator runs would use: KVM for a target of the host's architecture where
    /dev/kvm is usable (``--accel auto`` still tries a probe boot first), TCG otherwise."""
    from kharness.vm.accel import kvm_possible

    same = [p for p in profiles if p.kvm_host_arch == hostarch.machine()]
    if not same:
        return Check("KVM", "info", (), False, detail=f"no target here runs on a {hostarch.machine()} host's "
                                                     "KVM: every one runs under TCG (emulated, slower)")
    usable, why = kvm_possible(same[0])
    names = tuple(p.name for p in same)
    if usable:
        return Check("KVM", "info", names, False,
                     detail=f"/dev/kvm usable: {', '.join(names)} may run under KVM (--accel auto tries "
                            "a boot first); other targets under TCG")
    return Check("KVM", "info", names, False, detail=f"{why}: every target runs under TCG (emulated, slower)")


def examine(targets: list[str] | None = None) -> Report:
    """Look at the host for ``targets`` (default: every target, with the default one required)."""
    from kharness.targets import all_targets, get_target

    profiles = [get_target(t) for t in targets] if targets else list(all_targets().values())
    required_for = [p.name for p in profiles] if targets else [hostdeps.DEFAULT_TARGET]
    try:
        arch: str | None = hostarch.debian_arch()
    except InfraError:
        arch = None
    report = Report(hostarch.machine(), arch, [p.name for p in profiles], required_for)
    wanted = {hostdeps.EVERY_RUN, *required_for}
    for need in hostdeps.needs(profiles):
        found, detail = _look_for(need)
        required = bool(wanted & set(need.users))
        status = "ok" if found else "missing" if required else "optional"
        report.checks.append(Check(need.what, status, need.users, required, need.package, detail))
    report.checks += [_mirror_check(), _cache_check(), _kvm_check(profiles)]
    return report


def install(report: Report) -> None:
    """Run ``apt-get update`` and the report's ``apt-get install``, their output on stderr (stdout
    stays for the report). Raises :class:`InfraError` when apt-get cannot run or fails."""
    if not report.missing_packages:
        return
    if shutil.which("apt-get") is None:
        raise InfraError("apt-get not found: this is not a Debian host",
                         hint="install the packages `kharness doctor` lists with this system's tools, "
                              "or run kharness in a debian:bookworm container")
    argv = report.apt_argv()
    if argv[0] == "sudo" and shutil.which("sudo") is None:
        raise InfraError("not root, and no sudo to run apt-get with", hint=f"as root, run: {' '.join(argv[1:])}")
    sudo = argv[:1] if argv[0] == "sudo" else []
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for step, timeout in ((sudo + ["apt-get", "update", "-q"], APT_UPDATE_TIMEOUT), (argv, APT_INSTALL_TIMEOUT)):
        sys.stderr.write(f"kharness doctor: {' '.join(step)}\n")
        sys.stderr.flush()
        # Not a session of its own (unlike proc.run): sudo may have to ask for a password on the
        # terminal. Its output on file descriptor 2: a --json report is the only thing on stdout.
        try:
            p = subprocess.run(step, stdout=2, stderr=2, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise InfraError(f"`{' '.join(step)}` did not finish within {timeout} s (it was stopped)") from None
        if p.returncode != 0:
            raise InfraError(f"`{' '.join(step)}` failed (exit {p.returncode})",
                             hint="its output is above; fix that and run `kharness doctor --install` again")
