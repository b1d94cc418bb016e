"""``kharness run --remote``: a "board on the desk" that is a Debian guest started with
``kharness guest up`` (its sshd on a loopback port), driven over real SSH with paramiko. The board
is left as it was found; unknown and changed host keys are refused; a module that panics the board
is reported as "unreachable ... after insmod". The board fixture also has a login user with
passwordless sudo (``guest up --user``), as boards are reached (pi@raspberrypi): the same runs pass
as that user, and a user without passwordless sudo is told so in one line. x86_64 in `make test`;
arm64 with KH_DISTRO_GRID=1."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import EXAMPLES, FIXTURES, KHARNESS, ROOT, archive_series, require_series

pytestmark = pytest.mark.vm

GRID = os.environ.get("KH_DISTRO_GRID") == "1"
TARGETS = ["x86_64"] + (["arm64"] if GRID else [])
UP_LIMIT = 2400   # the first `guest up` builds the root filesystem (arm64: configures it in a guest)


def _cli(*args: str, timeout: float = UP_LIMIT) -> subprocess.CompletedProcess:
    env = dict(os.environ, KHARNESS_PROGRESS="0")
    return subprocess.run([*KHARNESS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


class Board:
    def __init__(self, target: str, lifetime: int = 1800, *extra: str):
        self.name = f"t-{target}-{uuid.uuid4().hex[:8]}"
        p = _cli("guest", "up", target, "--name", self.name, "--for", str(lifetime), "--json", *extra)
        assert p.returncode == 0, p.stderr[-3000:]
        self.info = json.loads(p.stdout)

    @property
    def address(self) -> str:
        """root's (the tests of what kharness does on a board are root's, unless they say)."""
        return self.at("root")

    @property
    def user_address(self) -> str:
        """The address `guest up` printed: with --user, that user's."""
        return self.info["address"]

    def at(self, user: str) -> str:
        return f"{user}@127.0.0.1:{self.info['port']}"

    def ssh(self, command: str, user: str = "root") -> str:
        """A command on the board through kharness's own SSH code (pinned host key); as root
        (through sudo for another user)."""
        from kharness.vm.ssh import HostKeys, SshGuest, parse_address

        g = SshGuest(parse_address(self.at(user)), identity=Path(self.info["identity"]),
                     host_keys=HostKeys(pinned=self.info["host_key"]), use_agent=False, cleanup=False)
        try:
            g.connect(60)
            return g.run(command, 60).stdout
        finally:
            g.close()

    def down(self) -> None:
        _cli("guest", "down", self.name, timeout=120)


SUDO_USER = "kh-pi"   # the board fixture's login user with passwordless sudo


@pytest.fixture(scope="module", params=TARGETS)
def board(request):
    require_series(request.param, "6.1")
    b = Board(request.param, 1800, "--user", SUDO_USER)
    yield b
    b.down()


def _log_stream_as(board: Board, user: str, text: str) -> str:
    """The board's kernel-log stream as ``user`` sees it after ``text`` is logged."""
    import time

    from kharness.vm.ssh import HostKeys, SshGuest, parse_address

    g = SshGuest(parse_address(board.at(user)), identity=Path(board.info["identity"]),
                 host_keys=HostKeys(pinned=board.info["host_key"]), use_agent=False, cleanup=False)
    try:
        g.connect(60)
        g.start_log_stream()
        g.run(f"echo {text} > /dev/kmsg", 60)
        end = time.monotonic() + 30
        while text not in g.console_text() and time.monotonic() < end:
            time.sleep(0.2)
        return g.console_text()
    finally:
        g.close()


def _run(kharness, board: Board, module, known_hosts, *extra: str, user: str = "root"):
    return kharness("run", str(module), "--remote", board.at(user), "--identity", board.info["identity"],
                    "--known-hosts", str(known_hosts), *extra)


# ([d]: the pattern does not match the command line of the shell that runs it)
LEFTOVERS = "ls -d /kh /tmp/.kh.* 2>/dev/null; pgrep -a -f '[d]mesg -w|[k]h-serve|[k]h-agent'; true"


@pytest.mark.timeout(UP_LIMIT + 600)
def test_examples_pass_on_the_board_and_it_is_left_clean(kharness, board, tmp_path):
    known = tmp_path / "known_hosts"
    before = board.ssh("cut -d' ' -f1 /proc/modules | sort")
    r = _run(kharness, board, EXAMPLES / "chardev-ioctl", known, "--accept-new-host-key")
    assert r.rc == 0, (r.result and r.result["summary"], r.stderr[-2000:])
    assert r.result["guest"]["kind"] == "remote" and r.result["target"] == board.info["target"]
    assert all(c["status"] == "pass" for c in r.result["checks"])
    # The key was added to the given known_hosts under [127.0.0.1]:PORT, and is trusted next time.
    assert f"[127.0.0.1]:{board.info['port']}" in known.read_text()
    again = _run(kharness, board, EXAMPLES / "hello", known)
    assert again.rc == 0, again.result and again.result["summary"]
    # Writes that must fail with EINVAL/ERANGE: the errno is kh-agent's to name, whatever the
    # board's shell (dash's echo says only "I/O error").
    sysfs = _run(kharness, board, EXAMPLES / "sysfs", known)
    assert sysfs.rc == 0, sysfs.result and sysfs.result["summary"]
    # Left as found: no /kh, no kharness scratch files, the same modules loaded.
    assert board.ssh("ls -d /kh /tmp/.kh.* 2>/dev/null; true").strip() == ""
    assert board.ssh("cut -d' ' -f1 /proc/modules | sort") == before


def debian_headers(target: str, kernel: str) -> Path:
    """The kbuild tree of Debian's headers for ``kernel`` (a release or series), unpacked as the
    archive path unpacks them (kharness.kernels.store): a real linux-headers-<release> tree."""
    from kharness.kernels.resolve import resolve_kernel
    from kharness.kernels.store import ensure_headers
    from kharness.targets import get_target

    return ensure_headers(resolve_kernel(get_target(target), kernel)).build_dir


@pytest.mark.timeout(UP_LIMIT + 900)
def test_headers_dir_of_the_boards_kernel_builds_on_the_host_and_another_release_is_refused(kharness, board,
                                                                                          tmp_path):
    """--headers DIR: the module built on the host against DIR (no Debian package of the board's
    kernel resolved for it), checked, loaded, unloaded; a DIR of another release is refused (exit
    2) before anything is built or loaded."""
    from kharness.kernels.resolve import series_of
    from kharness.targets import get_target

    release, target = board.info["release"], board.info["target"]
    known = tmp_path / "known_hosts"
    headers = debian_headers(target, release)
    before = board.ssh("cut -d' ' -f1 /proc/modules | sort")
    r = _run(kharness, board, EXAMPLES / "hello", known, "--accept-new-host-key", "--headers", str(headers))
    assert r.rc == 0, (r.result and r.result["summary"], r.stderr[-2000:])
    assert r.result["kernel"]["headers"] == {"source": "headers-dir", "dir": str(headers.resolve()),
                                             "module_symvers": True}
    assert r.result["kernel"]["packages"] == [] and r.result["kernel"]["release"] == release
    assert r.result["build"]["command"].startswith(f"make -C {headers.resolve()} ")
    assert r.result["modules"][0]["vermagic"].startswith(release + " ")
    assert f"--headers {headers}" in r.result["reproducer"]["kharness"]
    assert all(c["status"] == "pass" for c in r.result["checks"]) and r.result["checks"]

    others = [s for s in archive_series(target) if s in get_target(target).series and s != series_of(release)]
    if not others:
        pytest.skip(f"the archive offers {target} no other series to take headers from")
    other = debian_headers(target, others[-1])
    other_release = other.name.removeprefix("linux-headers-")
    r = _run(kharness, board, EXAMPLES / "hello", known, "--headers", str(other))
    assert r.rc == 2, r.result and r.result["summary"]
    assert f"is for {other_release}, the board runs {release}" in r.result["summary"]
    assert "--build-on-remote" in r.stderr
    assert [p["status"] for p in r.result["phases"] if p["name"] in ("build", "load")] == ["skipped", "skipped"]
    assert board.ssh("ls -d /kh /tmp/.kh.* 2>/dev/null; true").strip() == ""
    assert board.ssh("cut -d' ' -f1 /proc/modules | sort") == before


@pytest.mark.timeout(UP_LIMIT + 600)
def test_an_unknown_host_key_is_refused_without_accept_new(kharness, board, tmp_path):
    r = _run(kharness, board, EXAMPLES / "hello", tmp_path / "known_hosts")
    assert r.rc == 2
    assert "--accept-new-host-key" in r.stderr + (r.result or {}).get("summary", "")
    assert not (tmp_path / "known_hosts").exists() or board.info["host_key"].split()[1] not in \
        (tmp_path / "known_hosts").read_text()


@pytest.mark.timeout(UP_LIMIT + 600)
def test_a_changed_host_key_is_refused_even_with_accept_new(kharness, board, tmp_path):
    known = tmp_path / "known_hosts"
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    known.write_text(f"[127.0.0.1]:{board.info['port']} {other}\n")
    r = _run(kharness, board, EXAMPLES / "hello", known, "--accept-new-host-key")
    assert r.rc == 2
    text = r.stderr + (r.result or {}).get("summary", "")
    assert "SHA256:" in text and "changed" in text.lower(), text


@pytest.mark.timeout(UP_LIMIT + 600)
def test_examples_pass_as_a_user_with_passwordless_sudo_and_the_board_is_left_clean(kharness, board, tmp_path):
    """As boards are reached (pi@raspberrypi): every command through `sudo -n`, files as a root
    command's stdin (SFTP would write as the user), the kernel log (dmesg_restrict=1) under sudo."""
    assert board.info["user"] == SUDO_USER and board.user_address == board.at(SUDO_USER)
    assert board.ssh("id -un; sysctl -n kernel.dmesg_restrict", user=SUDO_USER).split() == ["root", "1"]
    assert "kh-log-stream-as-a-user" in _log_stream_as(board, SUDO_USER, "kh-log-stream-as-a-user")
    known = tmp_path / "known_hosts"
    before = board.ssh("cut -d' ' -f1 /proc/modules | sort")
    for example in ("hello", "chardev-ioctl"):
        r = _run(kharness, board, EXAMPLES / example, known, "--accept-new-host-key", user=SUDO_USER)
        assert r.rc == 0, (example, r.result and r.result["summary"], r.stderr[-2000:])
        assert r.result["guest"]["address"] == board.at(SUDO_USER)
        assert all(c["status"] == "pass" for c in r.result["checks"])
    # The kernel log (dmesg_restrict=1: root's) read through the user's sudo: by the health looks
    # (the module's own messages), as by the stream above (what a board that dies leaves).
    assert "khdemo: /dev/khdemo ready" in r.result["dmesg"]["load"], r.result["dmesg"]
    assert "khdemo: /dev/khdemo removed" in r.result["dmesg"]["unload"]
    # Left as found: no /kh, no scratch files, no log reader or kh-serve left, the same modules;
    # nothing in the user's home either.
    assert board.ssh(LEFTOVERS).strip() == ""
    assert board.ssh("cut -d' ' -f1 /proc/modules | sort") == before
    assert board.ssh(f"ls -A /home/{SUDO_USER}").split() == [".bash_logout", ".bashrc", ".profile", ".ssh"]


@pytest.mark.timeout(UP_LIMIT + 600)
def test_a_user_without_passwordless_sudo_is_told_in_one_line(kharness, board, tmp_path):
    """No sudo rights at all, or sudo that wants a password: exit 2 at once with one line naming
    passwordless sudo or root; never a prompt, nothing left on the board."""
    keys = "/root/.ssh/authorized_keys"
    board.ssh("for u in kh-nosudo kh-pwsudo; do id -u $u >/dev/null 2>&1 || { "
              "useradd --create-home --shell /bin/bash --password '*' $u && install -d -m 700 -o $u -g $u /home/$u/.ssh "
              f"&& install -m 600 -o $u -g $u {keys} /home/$u/.ssh/authorized_keys; }}; done; "
              "echo 'kh-pwsudo ALL=(ALL) ALL' > /etc/sudoers.d/kh-pwsudo && chmod 440 /etc/sudoers.d/kh-pwsudo")
    for user in ("kh-nosudo", "kh-pwsudo"):
        r = _run(kharness, board, EXAMPLES / "hello", tmp_path / "known_hosts", "--accept-new-host-key", user=user)
        assert r.rc == 2, (user, r.result and r.result["summary"], r.stderr[-2000:])
        errors = [line for line in r.stderr.splitlines() if line.startswith("kharness: error:")]
        assert len(errors) == 1, r.stderr
        assert f"{user}@127.0.0.1 needs passwordless sudo" in errors[0] and "sudo: a password is required" in errors[0]
        assert f"'{user} ALL=(ALL) NOPASSWD: ALL'" in errors[0] and "connect as root@127.0.0.1" in errors[0]
    assert board.ssh(LEFTOVERS).strip() == ""


@pytest.mark.timeout(UP_LIMIT + 600)
def test_a_module_that_panics_the_board_is_unreachable_after_insmod(kharness, tmp_path):
    require_series("x86_64", "6.1")
    b = Board("x86_64", lifetime=900)   # its own board: this one does not come back
    try:
        r = _run(kharness, b, FIXTURES / "init_panic", tmp_path / "known_hosts", "--accept-new-host-key")
        assert r.rc == 1, r.result and r.result["summary"]
        summary = r.result["summary"]
        assert summary.startswith("load: unreachable ") and "after insmod: likely panic or hang" in summary, summary
    finally:
        b.down()


@pytest.mark.timeout(UP_LIMIT + 600)
def test_guest_ls_and_down(tmp_path):
    require_series("x86_64", "6.1")
    b = Board("x86_64", lifetime=900)
    try:
        listed = json.loads(_cli("guest", "ls", "--json", timeout=60).stdout)
        mine = [g for g in listed if g["name"] == b.name]
        assert mine and mine[0]["address"] == b.address and mine[0]["address"].startswith("root@127.0.0.1:")
    finally:
        p = _cli("guest", "down", b.name, timeout=120)
    assert p.returncode == 0 and b.name in p.stdout
    listed = json.loads(_cli("guest", "ls", "--json", timeout=60).stdout)
    assert not [g for g in listed if g["name"] == b.name]
    assert _cli("guest", "down", b.name, timeout=60).returncode == 2


@pytest.mark.timeout(UP_LIMIT + 600)
def test_a_board_without_its_kernels_headers_cannot_build_on_itself(kharness, board, tmp_path):
    """The guest's /lib/modules/<release>/build points at the headers package, as on a board; the
    board fixture's guest has no headers installed: one line naming the package to install."""
    release = board.info["release"]
    r = _run(kharness, board, EXAMPLES / "hello", tmp_path / "known_hosts", "--accept-new-host-key",
             "--build-on-remote")
    assert r.rc == 2, r.result and r.result["summary"]
    text = r.stderr + ((r.result or {}).get("summary") or "")
    assert f"/lib/modules/{release}/build is missing" in text and f"linux-headers-{release}" in text, text
    assert board.ssh("ls -d /kh /tmp/.kh.* 2>/dev/null; true").strip() == ""


@pytest.mark.timeout(UP_LIMIT + 900)
def test_a_module_built_on_the_board_passes_and_the_board_is_left_clean(kharness, tmp_path):
    """--build-on-remote: the board (a guest with gcc, make and its kernel's headers; ~50 s more
    the first time, to build that root filesystem) builds examples/hello against its own
    /lib/modules/$(uname -r)/build; nothing of Debian's kernel packages is used on the host."""
    require_series("x86_64", "6.1")
    from kharness.kernels.resolve import resolve_kernel
    from kharness.targets import get_target

    release = resolve_kernel(get_target("x86_64"), "6.1").release   # the headers must be the running kernel's
    b = Board("x86_64", 900, "--kernel", release, "--guest-packages", f"gcc,make,linux-headers-{release}",
              "--user", SUDO_USER)
    try:
        known = tmp_path / "known_hosts"
        before = b.ssh("cut -d' ' -f1 /proc/modules | sort")
        # As a user with passwordless sudo (kh-agent goes to the board to build, and is in place
        # for the run: it is not written again under itself), then as root.
        r = _run(kharness, b, EXAMPLES / "hello", known, "--accept-new-host-key", "--build-on-remote", user=SUDO_USER)
        assert r.rc == 0, (r.result and r.result["summary"], r.stderr[-2000:])
        assert r.result["kernel"]["built_on"]["build_tree"] == f"/lib/modules/{release}/build"
        assert r.result["kernel"]["packages"] == []
        assert r.result["modules"][0]["vermagic"].startswith(release + " ")
        assert "--build-on-remote" in r.result["reproducer"]["kharness"]
        assert all(c["status"] == "pass" for c in r.result["checks"])
        # A compile error on the board is the module's build failure, with gcc's words.
        r = _run(kharness, b, FIXTURES / "build_error", known, "--build-on-remote")
        assert r.rc == 1, r.result and r.result["summary"]
        build = next(p for p in r.result["phases"] if p["name"] == "build")
        assert build["status"] == "fail" and "error:" in build["log"]
        # Left as found: no /kh, the same modules loaded.
        assert b.ssh(LEFTOVERS).strip() == ""
        assert b.ssh("cut -d' ' -f1 /proc/modules | sort") == before
    finally:
        b.down()
