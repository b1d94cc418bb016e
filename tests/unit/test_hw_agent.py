"""Unit tests for kharness.hw.agent: the kh-agent reply parser, and kh-agent built for every
target (static, right ELF machine/class/endianness) and run natively on x86_64."""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from kharness.errors import InfraError
from kharness.hw.agent import build_agent, parse_reply
from kharness.targets import all_targets

TARGETS = all_targets()
# (kernel_arch, bits) -> ELF e_machine
MACHINES = {("x86", 64): "EM_X86_64", ("arm64", 64): "EM_AARCH64", ("arm", 32): "EM_ARM",
            ("powerpc", 64): "EM_PPC64", ("powerpc", 32): "EM_PPC"}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))


# --- parse_reply -----------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("ret=0 errno=EINVAL out=0a0b", {"ret": 0, "errno": "EINVAL", "out": b"\x0a\x0b"}),
    ("ret=-1 errno=ENOTTY out=\n", {"ret": -1, "errno": "ENOTTY", "out": b""}),
    ("ret=5 errno=0 data=68656C6c6f", {"ret": 5, "errno": "0", "data": b"hello"}),
    ("ret=3 errno=0", {"ret": 3, "errno": "0"}),
    ("open_errno=E123", {"open_errno": "E123"}),
])
def test_parse_reply(line, expected):
    assert parse_reply(line) == expected


@pytest.mark.parametrize("line", [
    "", "   \n", "kh-agent 1", "ret=x errno=0", "ret=1.5", "ret=0 out=abc", "ret=0 out=zz",
    "ret=0 ret=1", "ret=0 =5", "ret=0 junk", "RET=0",
])
def test_parse_reply_rejects_garbage(line):
    with pytest.raises(ValueError):
        parse_reply(line)


# --- builds for every target -----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TARGETS))
def test_build_is_static_for_the_target(name):
    prof = TARGETS[name]
    cc = f"{prof.cross_compile}gcc"
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed: cannot build kh-agent for {name}")
    path = build_agent(prof)
    assert path.name == "kh-agent" and path.parent.name.startswith(f"{name}-")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == MACHINES[(prof.kernel_arch, prof.bits)]
        assert elf.elfclass == prof.bits
        assert ("little" if elf.little_endian else "big") == prof.endian
        assert elf["e_type"] == "ET_EXEC"
        assert not [s for s in elf.iter_segments() if s["p_type"] in ("PT_INTERP", "PT_DYNAMIC")]
        assert elf.get_section_by_name(".interp") is None


def test_build_is_cached():
    prof = TARGETS["x86_64"]
    first = build_agent(prof)
    mtime = first.stat().st_mtime_ns
    assert build_agent(prof) == first and first.stat().st_mtime_ns == mtime


def test_missing_compiler_is_an_infra_error():
    prof = dataclasses.replace(TARGETS["x86_64"], cross_compile="kh-no-such-arch-")
    with pytest.raises(InfraError) as e:
        build_agent(prof)
    assert "kh-no-such-arch-gcc" in e.value.message and "kharness doctor --install" in e.value.hint


def test_missing_static_libc_is_an_infra_error(tmp_path, monkeypatch):
    # A cross compiler without its libc6-dev-*-cross: the link fails on -lc.
    fake = tmp_path / "bin" / "kh-fake-gcc"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'kh-fake-gcc 1'; exit 0; }\n"
                    "echo '/usr/bin/ld: cannot find -lc: No such file or directory' >&2; exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    prof = dataclasses.replace(TARGETS["arm64"], cross_compile="kh-fake-")
    with pytest.raises(InfraError) as e:
        build_agent(prof)
    assert "libc6-dev-arm64-cross" in e.value.message and "kharness doctor --install" in e.value.hint
    assert "\n" not in e.value.message


# --- the x86_64 build, run natively ----------------------------------------------------------

native = pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None,
                            reason="runs the x86_64 build natively: needs an x86_64 host with gcc")


@pytest.fixture
def agent():
    path = build_agent(TARGETS["x86_64"])

    def run(*args, rc=0):
        p = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True)
        assert p.returncode == rc, p.stderr
        assert p.stdout.count("\n") == 1
        return p.stdout

    return run


@native
def test_version(agent):
    assert agent("version") == "kh-agent 4\n"


@native
def test_write_then_read_exact_bytes(agent, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"")
    payload = bytes(range(256))
    assert parse_reply(agent("write", f, payload.hex())) == {"ret": 256, "errno": "0"}
    assert f.read_bytes() == payload
    assert parse_reply(agent("read", f, 300)) == {"ret": 256, "errno": "0", "data": payload}
    assert parse_reply(agent("read", f, 3)) == {"ret": 3, "errno": "0", "data": b"\x00\x01\x02"}
    assert parse_reply(agent("write", f, "-")) == {"ret": 0, "errno": "0"}


@native
def test_ioctl_enotty_on_dev_null(agent):
    # TCGETS (0x5401) on a non-tty: ENOTTY; the buffer comes back as it went in.
    assert parse_reply(agent("ioctl", "/dev/null", "5401", "0102", 2)) == \
        {"ret": -1, "errno": "ENOTTY", "out": b"\x01\x02"}
    assert parse_reply(agent("ioctl", "/dev/null", "0x5401", "-", 0)) == \
        {"ret": -1, "errno": "ENOTTY", "out": b""}


@native
def test_ioctl_output_buffer(agent, tmp_path):
    # FIONREAD (0x541b) on a regular file: the bytes left to read, as a native int. The file is
    # read-only, so (as non-root) this also goes through the O_RDONLY fallback.
    f = tmp_path / "ro"
    f.write_bytes(b"hello")
    f.chmod(0o444)
    assert parse_reply(agent("ioctl", f, "541b", "-", 4)) == \
        {"ret": 0, "errno": "0", "out": (5).to_bytes(4, "little")}


@native
def test_open_failure_and_bad_usage(agent, tmp_path):
    assert parse_reply(agent("read", tmp_path / "missing", 1, rc=3)) == {"open_errno": "ENOENT"}
    assert parse_reply(agent("ioctl", tmp_path / "missing", "1", "-", 0, rc=3)) == {"open_errno": "ENOENT"}
    path = build_agent(TARGETS["x86_64"])
    for args in ([], ["frob"], ["read", "/dev/null"], ["read", "/dev/null", "x"],
                 ["write", "/dev/null", "abc"], ["write", "/dev/null", "zz"],
                 ["ioctl", "/dev/null", "xyz", "-", "0"], ["ioctl", "/dev/null", "1", "-", "-1"]):
        p = subprocess.run([str(path), *args], capture_output=True, text=True)
        assert p.returncode == 2 and p.stdout == "" and "usage" in p.stderr, args


def _lines(path, *args):
    p = subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [parse_reply(x) for x in p.stdout.splitlines()]


@native
def test_session_runs_steps_on_one_open_file(tmp_path):
    path = build_agent(TARGETS["x86_64"])
    f = tmp_path / "f"
    f.write_bytes(b"abc")
    r = _lines(path, "session", f, "rw", "r:2", "w:7a7a", "s:0", "r:10", "again", "other", "close",
               "r:1", "open", "r:1")
    assert [x["step"] for x in r] == list(range(11))
    assert r[0] == {"step": 0, "op": "open", "ret": 0, "errno": "0"}
    assert r[1]["data"] == b"ab" and r[2]["ret"] == 2 and r[4]["data"] == b"abzz"
    assert r[5]["ret"] == 0 and r[6]["ret"] == 0            # a second open, here and in a child
    assert (r[8]["ret"], r[8]["errno"]) == (-1, "EBADF")     # read after close
    assert r[10]["data"] == b"a"
    missing = _lines(path, "session", tmp_path / "missing", "r", "r:1")
    assert (missing[0]["ret"], missing[0]["errno"]) == (-1, "ENOENT")


@native
def test_hold_keeps_the_file_open_between_steps(tmp_path):
    path = build_agent(TARGETS["x86_64"])
    f = tmp_path / "f"
    f.write_bytes(b"hello")
    d = tmp_path / "h"
    d.mkdir()
    first = _lines(path, "hold", f, "r", d)[0]
    assert first["ret"] == 0 and first["pid"] > 0

    def step(op):
        (d / "in").write_text(op + "\n")
        return parse_reply((d / "out").read_text())

    assert step("r:2")["data"] == b"he"
    assert step("r:2")["data"] == b"ll"          # the offset is kept: one open file
    assert step("close")["ret"] == 0


@native
def test_run_frames_a_command_as_the_channel_expects(tmp_path):
    """`kh-agent run` is the guest half of a channel command: its reply parses with the host half,
    byte-exact, sizes untruncated, the exit status (128 + signal for a killed command) last."""
    import base64

    from kharness.vm.channel import parse_framed

    path = build_agent(TARGETS["x86_64"])

    def run(script: str, max_bytes: int = 1 << 20) -> tuple[str, int, str, int, int]:
        b64 = base64.b64encode(script.encode()).decode()
        p = subprocess.run([str(path), "run", "7", b64, str(max_bytes)], capture_output=True, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        body, _, end = p.stdout.rpartition(b"\x1eKHE 7 ")
        out, out_size, err, err_size = parse_framed(body, 7)
        return out, out_size, err, err_size, int(end.decode())

    assert run("printf 'a\\nb'; echo oops >&2; exit 3") == ("a\nb", 3, "oops\n", 5, 3)
    assert run("true") == ("", 0, "", 0, 0)
    assert run("kill -9 $$")[4] == 137
    out, size, _, _, rc = run("seq 1 20000", max_bytes=1000)        # capped, the full size told
    assert (len(out), size, rc) == (1000, len("\n".join(map(str, range(1, 20001)))) + 1, 0)
    text = "".join(chr(c) for c in range(1, 128)) + "é€"          # every byte crosses intact
    assert run(f"printf '%s' {__import__('shlex').quote(text)}")[0] == text
    assert run("pwd")[0] == "/\n"                                  # runs from /


# --- insmod, rmmod, cat: busybox's messages from one static process --------------------------

def _tool(*args, env=None):
    path = build_agent(TARGETS["x86_64"])
    return subprocess.run([str(path), *map(str, args)], capture_output=True, text=True, timeout=30, env=env)


def test_insmod_messages_map_back_to_their_errno():
    """Every message kh-agent's moderror() prints (busybox's words) reads back as its errno."""
    import re

    from kharness.checks.fields import errno_of
    from kharness.hw.agent import SOURCE

    body = SOURCE.read_text().split("static const char *moderror(int err)", 1)[1].split("\n}\n", 1)[0]
    cases = re.findall(r"case (E[A-Z0-9]+):\s*return \"([^\"]+)\";", body)
    assert {e for e, _ in cases} == {"ENOEXEC", "ENOENT", "ESRCH", "ENOSYS"}
    for name, text in cases:
        assert errno_of(f"insmod: can't insert '/kh/m.ko': {text}\n") == name, text


@native
def test_insmod_of_a_missing_file(tmp_path):
    p = _tool("insmod", tmp_path / "missing.ko", "a=1")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == f"insmod: can't insert '{tmp_path}/missing.ko': No such file or directory\n"


@native
def test_insmod_of_a_file_that_is_no_module(tmp_path):
    # The kernel refuses it before anything is loaded: ENOEXEC as root, EPERM without
    # CAP_SYS_MODULE, ENOSYS where there is no module loading at all (a sandboxed kernel),
    # EKEYREJECTED where only signed modules load.
    from kharness.checks.fields import errno_of

    f = tmp_path / "notmod.ko"
    f.write_bytes(b"hello, not an ELF file\n" * 4)
    p = _tool("insmod", f, "x=1", 'y="a b"')
    assert (p.returncode, p.stdout) == (1, ""), p.stderr
    assert p.stderr.startswith(f"insmod: can't insert '{f}': ") and p.stderr.count("\n") == 1
    assert errno_of(p.stderr) in {"ENOEXEC", "EPERM", "ENOSYS", "EKEYREJECTED"}, p.stderr


@native
def test_insmod_hands_a_compressed_module_the_kernel_cannot_take_to_the_guests_insmod(tmp_path):
    import gzip

    try:
        kernel_takes = open("/sys/module/compression").read().strip()
    except OSError:
        kernel_takes = None
    if kernel_takes == "gzip":
        pytest.skip("this kernel decompresses gzip modules itself")
    f = tmp_path / "m.ko.gz"
    f.write_bytes(gzip.compress(b"\x7fELF not really"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "insmod").write_text('#!/bin/sh\necho "the guest\'s insmod: $*"\nexit 3\n')
    (bindir / "insmod").chmod(0o755)
    p = _tool("insmod", f, "a=1", "b=2", env={"PATH": str(bindir)})
    assert (p.returncode, p.stdout) == (3, f"the guest's insmod: {f} a=1 b=2\n")
    # no insmod to hand it to: said so, and busybox's line for a file it cannot load
    p = _tool("insmod", f, env={"PATH": str(tmp_path / "nowhere")})
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == f"insmod: can't insert '{f}': invalid module format"
    assert "gzip-compressed" in p.stderr.splitlines()[0]


@native
def test_rmmod_of_a_module_that_is_not_loaded():
    from kharness.checks.fields import errno_of

    # A file name names its module, as busybox reads it; the first failure ends the command.
    p = _tool("rmmod", "/lib/kh-no-such-module.ko", "kh_other")
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr.startswith("rmmod: can't unload module 'kh_no_such_module': ") and p.stderr.count("\n") == 1
    # ENOENT as root; EPERM without CAP_SYS_MODULE; ENOSYS in a sandbox without modules
    assert errno_of(p.stderr) in {"ENOENT", "EPERM", "ENOSYS"}, p.stderr
    if os.geteuid() == 0 and errno_of(p.stderr) != "ENOSYS":
        assert p.stderr.endswith(": No such file or directory\n")


@native
def test_cat_prints_files_and_names_what_it_cannot_read(tmp_path):
    big = bytes(range(256)) * 1000                  # several reads and writes
    (tmp_path / "a").write_bytes(big)
    (tmp_path / "b").write_text("second\n")
    path = build_agent(TARGETS["x86_64"])
    p = subprocess.run([str(path), "cat", tmp_path / "a", tmp_path / "b"], capture_output=True, timeout=30)
    assert (p.returncode, p.stdout, p.stderr) == (0, big + b"second\n", b"")
    # one it cannot open: said, and the next one still printed
    p = _tool("cat", tmp_path / "missing", tmp_path / "b", tmp_path)
    assert (p.returncode, p.stdout) == (1, "second\n")
    assert p.stderr == f"cat: {tmp_path}/missing: No such file or directory\ncat: {tmp_path}: Is a directory\n"
    with open("/dev/full", "wb") as full:
        p = subprocess.run([str(path), "cat", tmp_path / "b"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert (p.returncode, p.stderr) == (1, "cat: write error: No space left on device\n")


@native
def test_the_new_operations_need_an_argument():
    for op in ("insmod", "rmmod", "cat"):
        p = _tool(op)
        assert p.returncode == 2 and "usage" in p.stderr, op


# --- unpack: the bundle of a guest over SSH, without the guest's cpio ------------------------

def _unpack(tmp_path, data: bytes, rc: int = 0) -> subprocess.CompletedProcess:
    dest = tmp_path / "kh"
    dest.mkdir(exist_ok=True)
    p = subprocess.run([str(build_agent(TARGETS["x86_64"])), "unpack"], input=data, cwd=dest, capture_output=True)
    assert p.returncode == rc, p.stderr
    return p


@native
def test_unpack_makes_the_bundles_files_and_modes_and_replaces_old_ones(tmp_path):
    from kharness.image.initramfs import bundle

    files = {"hello.ko": b"\x7fELF module", "bin/test": b"\x7fELF program", "bin/sub/x": b"x" * 70001, "empty": b""}
    (tmp_path / "kh").mkdir()
    (tmp_path / "kh" / "hello.ko").write_bytes(b"an older, longer module from the last run")
    _unpack(tmp_path, bundle(files, compressed=False))
    for name, content in files.items():
        assert (tmp_path / "kh" / name).read_bytes() == content
    assert (tmp_path / "kh/bin/test").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "kh/hello.ko").stat().st_mode & 0o111 == 0


@native
@pytest.mark.parametrize("name", ["../x", "bin/../../x", "bin/.."])   # (CpioWriter drops a leading /)
def test_unpack_refuses_names_that_leave_the_directory(tmp_path, name):
    from kharness.image.cpio import CpioWriter

    w = CpioWriter()
    w.file(name, b"x", 0o644)
    p = _unpack(tmp_path, w.getvalue(), rc=1)
    assert b"leaves the directory" in p.stderr
    assert not (tmp_path / "x").exists()


@native
@pytest.mark.parametrize("data", [b"", b"not a cpio at all", b"070701" + b"0" * 50])
def test_unpack_refuses_what_is_not_a_whole_archive(tmp_path, data):
    assert b"kh-agent: unpack:" in _unpack(tmp_path, data, rc=1).stderr


@native
@pytest.mark.skipif(os.path.exists("/run/udev/control"), reason="this host runs udevd")
def test_udev_settle_without_udevd_does_nothing_and_drops_the_note(tmp_path):
    note = Path("/run/kh-uevents")
    note.write_text("1 0\n")
    p = subprocess.run([str(build_agent(TARGETS["x86_64"])), "udev-settle"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == p.stderr == ""
    assert not note.exists()
