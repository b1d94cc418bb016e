"""``kharness run --remote ... --build-on-remote``, judged with a fake board whose ``make`` output
and .ko bytes are scripted (no SSH, no compiler): what goes to /kh/src, the build on the board,
the .ko fetched back and its modinfo read, a compile error (exit 1, its output in the build log),
a board without a build tree (exit 2, with the headers package to install), the kernel's own
modules loaded with the board's modprobe, and the one-line error for a kernel Debian's archive
does not have. The real path is tests/integration/test_remote_board.py."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import struct
from pathlib import Path

import pytest

from kharness import plan, runner
from kharness.errors import UsageError
from kharness.runner import build, remote, remote_build, ssh_boot
from kharness.targets import get_target
from kharness.testing.fake_board import FakeBoard
from kharness.testing.fake_guest import FakeGuest, Rule

RELEASE = "6.6.31+rpt-rpi-v8"
VERMAGIC = f"{RELEASE} SMP preempt mod_unload modversions aarch64"
TOOLS = f'tree\nmake\n4\nCONFIG_CC_VERSION_TEXT="gcc (Debian 12.2.0-14) 12.2.0"\n'


def ko(**modinfo: str) -> bytes:
    """A minimal ELF64 relocatable with a .modinfo section, as kharness.elf reads a .ko."""
    info = b"".join(f"{k}={v}".encode() + b"\0" for k, v in modinfo.items())
    shstr = b"\0.modinfo\0.shstrtab\0"
    info_off = 64
    shstr_off = info_off + len(info)
    shoff = (shstr_off + len(shstr) + 7) & ~7
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 183, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    sections = [struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, info_off, len(info), 0, 0, 1, 0),
                struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)]
    body = header + info + shstr
    return body + bytes(shoff - len(body)) + b"".join(sections)


def board(*rules: Rule, tools: str = TOOLS, make_out: str = "  CC [M]  /kh/src/mymod.o\n", make_rc: int = 0,
          module: bytes | None = None) -> FakeBoard:
    data = module if module is not None else ko(name="mymod", vermagic=VERMAGIC, license="GPL", depends="")
    b64 = base64.encodebytes(data).decode()
    return FakeBoard(FakeGuest([
        *rules,
        Rule(r"^test -d ", stdout=tools),
        Rule(r"make -C /lib/modules/6\.6\.31\+rpt-rpi-v8/build M=/kh/src ", stdout=make_out, rc=make_rc),
        Rule(r"^cd /kh/src && find \. -name", stdout="./mymod.ko\n"),
        Rule(r"^wc -c < /kh/src/mymod\.ko", stdout=f"{len(data)}\n{hashlib.sha256(data).hexdigest()}  -\n"),
        Rule(r"^dd if=/kh/src/mymod\.ko bs=\d+ skip=0 count=1", stdout=b64),
        Rule(r"modinfo -F vermagic", stdout=VERMAGIC + "\n"),
    ], release=RELEASE), release=RELEASE)


@pytest.fixture
def moddir(tmp_path):
    d = tmp_path / "mymod"
    d.mkdir()
    (d / "mymod.c").write_text("#include <linux/module.h>\nstatic int __init i(void) { return 0; }\n"
                               "module_init(i);\nMODULE_LICENSE(\"GPL\");\n")
    (d / ".git").mkdir()
    (d / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "secret.h").write_text("outside\n")
    (d / "outside.h").symlink_to(tmp_path / "secret.h")
    (d / "inside.h").symlink_to(d / "mymod.c")
    return d


@pytest.fixture
def board_run(tmp_path, monkeypatch):
    """Run a module directory on a fake board with --build-on-remote; nothing may be fetched from
    Debian (resolving or unpacking a kernel fails the test)."""
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))

    def no_archive(*a, **k):
        raise AssertionError("a build on the board fetched kernel packages")

    monkeypatch.setattr(plan.GuestPlan, "resolve", no_archive)
    monkeypatch.setattr(build, "ensure_headers", no_archive)
    agent = tmp_path / "kh-agent"
    agent.write_bytes(b"\x7fELF agent")
    monkeypatch.setattr(ssh_boot, "build_agent", lambda profile: agent)
    monkeypatch.setattr(remote_build, "build_agent", lambda profile: agent)

    def go(module_dir: Path, b: FakeBoard, build_on_remote: bool = True):
        profile = dataclasses.replace(get_target("arm64"), snapshot=False)
        monkeypatch.setattr(remote, "connect", lambda opts, asked: (b, profile, RELEASE))
        opts = runner.RunOptions(module_dir=module_dir, remote="pi@127.0.0.1:2222", build_on_remote=build_on_remote)
        r = runner.Run(opts).execute()
        runner.wait_for_teardown()
        return r

    return go


def test_the_module_is_built_on_the_board_and_its_ko_fetched(board_run, moddir):
    b = board()
    r = board_run(moddir, b)
    assert r.status == "pass", r.summary
    sent = {p for p in b.g.files if p.startswith("/kh/src/")}
    # Regular files and links inside the tree; not .git, not a link that leaves the directory.
    assert sent == {"/kh/src/mymod.c", "/kh/src/inside.h", "/kh/src/Kbuild"}
    assert "obj-m += mymod.o" in b.g.files["/kh/src/Kbuild"].decode()
    make = [c for c in b.g.commands if " make -C " in c]
    assert make and "M=/kh/src" in make[0] and "-j4" in make[0]
    assert b.agent == b"\x7fELF agent"
    # The fetched .ko's modinfo, as a host build's.
    (m,) = r.modules
    assert m["name"] == "mymod" and m["vermagic"] == VERMAGIC and m["modinfo"]["license"] == ["GPL"]
    assert r.kernel.release == RELEASE and r.kernel.packages == [] and r.kernel.suite == ""
    assert r.kernel.built_on == {"board": "pi@127.0.0.1:2222", "build_tree": f"/lib/modules/{RELEASE}/build"}
    assert r.kernel.headers == {"source": "board", "dir": f"/lib/modules/{RELEASE}/build"}
    assert r.build.compiler == "gcc (Debian 12.2.0-14) 12.2.0"
    assert "kh-agent insmod /kh/mymod.ko" in b.g.commands and "kh-agent rmmod mymod" in b.g.commands
    assert r.reproducer["kharness"].endswith("--remote pi@127.0.0.1:2222 --build-on-remote")


def test_a_compile_error_is_the_modules_build_failure_with_the_compilers_output(board_run, moddir):
    out = "/kh/src/mymod.c:3:1: error: expected ';' before 'module_init'\nmake[2]: *** Error 1\n"
    b = board(make_out=out, make_rc=2)
    r = board_run(moddir, b)
    assert r.status == "fail" and r.exit_code == 1, r.summary
    assert "expected ';'" in r.summary
    ph = r.phase("build")
    assert ph.status == "fail" and "expected ';' before 'module_init'" in ph.log
    (d,) = [d for d in r.build.diagnostics if d["severity"] == "error"]
    assert d["file"] == f"{moddir.resolve()}/mymod.c" and d["line"] == 3
    assert not [c for c in b.g.commands if c.startswith(("dd ", "insmod", "kh-agent insmod"))]


def test_a_board_without_its_kernels_build_tree_is_told_what_to_install(board_run, moddir):
    b = board(tools="make\n4\n")
    r = board_run(moddir, b)
    assert r.status == "error" and r.exit_code == 2
    assert f"/lib/modules/{RELEASE}/build is missing" in r.summary
    assert "raspberrypi-kernel-headers" in r.error["message"] and f"linux-headers-{RELEASE}" in r.error["message"]
    assert not [c for c in b.g.commands if "make -C" in c] and not b.g.files


def test_a_board_without_gcc_is_its_setup_not_the_modules_failure(board_run, moddir):
    b = board(make_out="make[2]: gcc-12: No such file or directory\n/bin/sh: 1: gcc-12: not found\n", make_rc=2)
    r = board_run(moddir, b)
    assert r.status == "error" and r.exit_code == 2, r.summary
    assert "build-essential" in r.error["message"]


def test_a_kernel_debian_does_not_have_says_build_on_remote(board_run, moddir, monkeypatch):
    def not_found(self):
        raise UsageError(f"kernel {RELEASE!r} is not a arm64 kernel (target arm64)")

    monkeypatch.setattr(plan.GuestPlan, "resolve", not_found)
    r = board_run(moddir, board(), build_on_remote=False)
    assert r.status == "error" and r.exit_code == 2
    assert r.summary == (f"the board runs kernel {RELEASE}, which is not in Debian's archive for arm64 "
                         "(add --build-on-remote to build on the board against its own headers, or --headers DIR "
                         "with them on this host)"), r.summary
    assert "\n" not in r.summary


def test_build_on_remote_needs_remote(tmp_path, moddir):
    r = runner.Run(runner.RunOptions(module_dir=moddir, build_on_remote=True)).execute()
    assert r.exit_code == 2 and "--remote" in r.summary


def test_dependencies_are_the_boards_own_loaded_with_modprobe_and_removed_after(board_run, moddir):
    show = (f"insmod /lib/modules/{RELEASE}/kernel/drivers/media/mc/mc.ko.xz \n"
            f"insmod /lib/modules/{RELEASE}/kernel/drivers/media/v4l2-core/videodev.ko.xz \n")
    b = board(Rule(r"modprobe --show-depends videodev", stdout=show),
              Rule(r"^cat /proc/modules$", stdout="mc 90112 0 - Live 0x0\n", times=1),
              Rule(r"^cat /proc/modules$", stdout="mc 90112 1 videodev, Live 0x0\nvideodev 282624 0 - Live 0x0\n"),
              Rule(r"^modprobe videodev$", loads="videodev"),
              module=ko(name="mymod", vermagic=VERMAGIC, license="GPL", depends="videodev"))
    r = board_run(moddir, b)
    assert r.status == "pass", r.summary
    chain = {d["name"]: d["status"] for d in r.dependencies["mymod"]}
    assert chain == {"mc": "already loaded", "videodev": "loaded"}
    assert "modprobe videodev" in b.g.commands
    assert not [c for c in b.g.commands if c.startswith(("insmod /kh/", "kh-agent insmod /kh/")) and "mymod" not in c]
    # Only videodev (not mc, which the board had) is removed, when the board is closed.
    (cleanup,) = [c for c in b.g.commands if c.startswith("kh_rm()")]
    assert "for m in videodev;" in cleanup and "case ' mc '" in cleanup
    assert b.g.closed


def test_a_dependency_the_board_lacks_is_named(board_run, moddir):
    b = board(Rule(r"modprobe --show-depends videodev",
                   stdout=f"modprobe: FATAL: Module videodev not found in directory /lib/modules/{RELEASE}\n"),
              module=ko(name="mymod", vermagic=VERMAGIC, license="GPL", depends="videodev"))
    r = board_run(moddir, b)
    assert r.exit_code == 2 and "videodev" in r.summary and "the board's kernel" in r.summary


def test_large_modules_come_back_in_chunks(tmp_path):
    """A .ko larger than one command's output is read in pieces (and checked whole)."""
    data = ko(name="big", vermagic=VERMAGIC) + bytes(range(256)) * 5000
    chunk = remote_build.FETCH_CHUNK
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    rules = [Rule(r"find \. -name", stdout="./big.ko\n"),
             Rule(r"^wc -c", stdout=f"{len(data)}\n{hashlib.sha256(data).hexdigest()}  -\n")]
    rules += [Rule(rf"^dd if=/kh/src/big\.ko bs={chunk} skip={i} count=1", stdout=base64.encodebytes(p).decode())
              for i, p in enumerate(pieces)]
    run = runner.Run(runner.RunOptions(module_dir=tmp_path))
    run.guest = FakeGuest(rules)
    run.workdir = tmp_path / "run"
    run.workdir.mkdir()
    (m,) = remote_build.fetch_modules(run, 10)
    assert len(pieces) > 1 and m.path.read_bytes() == data and m.name == "big"
