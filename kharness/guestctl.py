"""``kharness guest up|down|ls``: distro guests that outlive the command that started them, to test
against as if they were boards on the desk (``kharness run --remote root@127.0.0.1:PORT``).

A guest is a QEMU process under ``timeout`` (coreutils): whatever happens to kharness, the guest
stops at its deadline (``--for``, default one hour), so none is ever leaked. Its directory under
:func:`guests_dir` holds its root disk (a qcow2 overlay on the cached Debian root filesystem), its
console log and ``guest.json`` (how to reach it). ``ls`` forgets guests whose process is gone.
Forwarded ports bind 127.0.0.1 only.

``--user NAME`` makes the guest a board as boards usually are: reached as a normal user with
passwordless sudo (``pi@raspberrypi``). sudo goes into the guest's packages (only then: the default
root filesystem stays as it is), and once sshd answers, root makes the user (login by kharness's key
and the ``--authorized-key`` keys, no password, ``NAME ALL=(ALL) NOPASSWD: ALL`` in
/etc/sudoers.d/kharness); the address printed is then the user's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from kharness import ui
from kharness.errors import InfraError, UsageError
from kharness.paths import cache_dir

DEFAULT_LIFETIME = 3600.0
STOP_TIMEOUT = 10.0
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A login name every Debian useradd takes as it is: lower case, no leading digit or '-', 32 at most.
_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
ROOT = "root"
SUDO_PACKAGE = "sudo"
SUDOERS = "/etc/sudoers.d/kharness"


def guests_dir() -> Path:
    d = cache_dir() / "guests"
    d.mkdir(parents=True, exist_ok=True)
    return d


@dataclass
class GuestInfo:
    name: str
    pid: int                 # the `timeout` process leading the guest's process group
    target: str
    release: str
    suite: str
    port: int
    user: str
    identity: str            # kharness's private key for it
    host_key: str            # the host key its sshd presents
    started: float
    deadline: float
    dir: str

    @property
    def address(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        try:   # the pid may have been reused: it must still be our guest's (its argv names its dir)
            return self.dir.encode() in Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise UsageError(f"guest name {name!r} is not usable",
                         hint="use letters, digits, '.', '_' and '-' (at most 64)")
    return name


def check_user(user: str) -> str:
    """``user`` if it is a usable login name for ``guest up --user`` (UsageError otherwise)."""
    if not _USER_RE.fullmatch(user):
        raise UsageError(f"--user {user!r} is not a usable login name",
                         hint="lower case letters, digits, '_' and '-', starting with a letter or '_' (at most 32)")
    return user


def add_user_command(user: str, *, home_base: str = "/home", sudoers: str = SUDOERS) -> str:
    """The root command (in the guest) that makes ``user``: a home, bash as its shell, no password
    (``*``: not a locked account, which sshd without PAM refuses), root's authorized keys, and
    passwordless sudo. Prints ``made``, or ``exists`` for a name the guest already has."""
    u = shlex.quote(check_user(user))
    home = shlex.quote(f"{home_base}/{user}")
    sudoers = shlex.quote(sudoers)
    return (f"if id -u {u} >/dev/null 2>&1; then echo exists; exit 0; fi; "
            f"useradd --create-home --home-dir {home} --shell /bin/bash --user-group --password '*' -- {u} && "
            f"install -d -m 700 -o {u} -g {u} {home}/.ssh && "
            f"install -m 600 -o {u} -g {u} /root/.ssh/authorized_keys {home}/.ssh/authorized_keys && "
            f"printf '%s ALL=(ALL) NOPASSWD: ALL\\n' {u} > {sudoers}.tmp && chmod 440 {sudoers}.tmp && "
            f"visudo -cqf {sudoers}.tmp && mv {sudoers}.tmp {sudoers} && echo made")


def _read(d: Path) -> GuestInfo | None:
    try:
        return GuestInfo(**json.loads((d / "guest.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def listing() -> list[GuestInfo]:
    """The guests still running (those whose process is gone are forgotten)."""
    found = []
    for d in sorted(guests_dir().iterdir()):
        if not d.is_dir():
            continue
        info = _read(d)
        if info is None:
            if time.time() - d.stat().st_mtime > 600:   # a guest dir that never got its guest.json
                shutil.rmtree(d, ignore_errors=True)
            continue
        if info.alive():
            found.append(info)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return found


def _stop(info: GuestInfo, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(info.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(info.pid, 0)
            except ProcessLookupError:
                break
            try:   # our child only when this process started it; reap it if so
                os.waitpid(info.pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        else:
            continue
        break
    shutil.rmtree(info.dir, ignore_errors=True)


def down(name: str | None, everything: bool = False, timeout: float = STOP_TIMEOUT) -> list[str]:
    """Stop the guest ``name`` (or every guest): the names stopped."""
    guests = listing()
    if not everything:
        check_name(name or "")
        guests = [g for g in guests if g.name == name]
        if not guests:
            raise UsageError(f"no guest named {name!r} is running", hint="`kharness guest ls` lists them")
    for g in guests:
        _stop(g, timeout)
    return [g.name for g in guests]


def up(target: str, *, name: str | None = None, kernel: str | None = None, suite: str | None = None,
       packages: tuple[str, ...] = (), port: int | None = None, authorized_keys: tuple[Path, ...] = (),
       lifetime: float = DEFAULT_LIFETIME, boot_timeout: float = 600.0, accel: str = "auto",
       user: str | None = None) -> GuestInfo:
    """Start a distro guest in the background and wait until its sshd answers; with ``user``
    (other than root), that user is made in it, with passwordless sudo."""
    from kharness.image import distro
    from kharness.plan import plan_guest
    from kharness.sshkeys import client_key
    from kharness.vm.accel import choose_accel
    from kharness.vm.qemu import BootSpec, build_argv, qemu_binary
    from kharness.vm.ssh import HostKeys, SshAddress, SshGuest, SshUnanswered

    if lifetime <= 0:
        raise UsageError("--for must be a positive number of seconds")
    keys = []
    for k in authorized_keys:
        try:
            text = k.read_text().strip()
        except OSError as e:
            raise UsageError(f"cannot read the authorized key {k}: {e.strerror}") from None
        if not re.fullmatch(r"(ssh-|ecdsa-|sk-)[\w@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?", text):
            raise UsageError(f"{k} is not an OpenSSH public key line", hint="give a .pub file")
        keys.append(text)
    name = check_name(name or f"{target}-{os.getpid()}")
    if user is not None and check_user(user) != ROOT:
        packages = (*packages, SUDO_PACKAGE)
    else:
        user = None
    if any(g.name == name for g in listing()):
        raise UsageError(f"a guest named {name!r} is already running", hint="pick another --name, or `kharness guest down`")
    plan = plan_guest(target, kernel)
    profile = plan.profile
    qemu_binary(profile)
    spec, built = plan.resolve()
    kernel_bundle, _base, dtb = plan.image(spec, built)
    image = distro.ensure_distro(profile, kernel_bundle, suite or distro.suite_for(spec.release), tuple(packages), spec=spec)
    boot = BootSpec(kernel_bundle.kernel, image.initrd, dtb, distro.kernel_append(profile, image))
    accel_used, _note = choose_accel(profile, accel, boot)
    d = guests_dir() / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    root = distro.overlay(profile, image.rootfs, d / "root.qcow2")
    port = port or distro.free_port()
    argv = build_argv(profile, boot, d, accel_used, tuple(distro.qemu_args(profile, image, root, port)),
                      console_file=d / "console.log")
    # `timeout` leads the process group and outlives kharness: the guest's deadline holds even if
    # nobody ever runs `guest down`. --kill-after: a QEMU that ignores SIGTERM is killed.
    cmd = ["timeout", "--kill-after=10", f"{int(lifetime)}", *argv]
    with open(d / "qemu.stderr", "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
    identity = client_key()[0]
    now = time.time()
    info = GuestInfo(name, proc.pid, profile.name, spec.release, image.suite, port, user or image.user,
                     str(identity), image.host_key, now, now + lifetime, str(d))
    ssh = SshGuest(SshAddress(image.user, "127.0.0.1", port), identity=identity,
                   host_keys=HostKeys(pinned=image.host_key), use_agent=False, cleanup=False)
    try:
        with ui.step(f"booting {image.suite} with {spec.release} on {profile.name} ({accel_used}) as guest {name}"):
            deadline = time.monotonic() + boot_timeout
            while True:
                if proc.poll() is not None:
                    tail = (d / "console.log").read_text(errors="replace")[-2000:] if (d / "console.log").exists() else ""
                    raise InfraError(f"the guest stopped while booting (status {proc.returncode})",
                                     hint=f"its console ended with: {tail.strip().splitlines()[-1] if tail.strip() else 'nothing'}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise InfraError(f"the guest's sshd did not answer within {boot_timeout:g}s",
                                     hint=f"see {d / 'console.log'}")
                try:
                    ssh.connect(min(left, 20.0))   # in slices: a guest that died is seen between them
                    break
                except SshUnanswered:
                    continue
            if keys:
                r = ssh.run("mkdir -p /root/.ssh && cat >> /root/.ssh/authorized_keys", 60.0,
                            stdin=("\n".join(keys) + "\n").encode())
                if r.rc != 0:
                    raise InfraError(f"could not add the authorized key(s): {r.stderr.strip()[:200]}")
            if user is not None:   # (after the keys: the user gets root's authorized_keys)
                r = ssh.run(add_user_command(user), 60.0)
                if "exists" in r.stdout.split():
                    raise UsageError(f"the guest already has a user {user!r}", hint="pick another --user name")
                if r.rc != 0 or "made" not in r.stdout.split():
                    raise InfraError(f"could not make the user {user!r} in the guest (exit {r.rc}): "
                                     f"{r.stderr.strip()[:200]}")
    except BaseException:
        ssh.close()
        _stop(info, STOP_TIMEOUT)
        raise
    ssh.close()
    (d / "guest.json").write_text(json.dumps(asdict(info), indent=1))
    return info
