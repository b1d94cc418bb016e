"""``kharness run --remote ... --headers DIR`` (and ``--kernel-tree DIR`` with --remote): the board
kernel's kbuild tree on the host, judged before anything is built or loaded. Trees here are
made in tmp_path with the files a Debian headers package has (Makefile, .config, Module.symvers,
include/generated/utsrelease.h, scripts/); the board is a FakeBoard and the module build is
stubbed (it records the headers it was given: the tree itself, nothing fetched from Debian).
The real path (Debian's headers for the board's kernel, a real build, a real board over SSH) is
tests/integration/test_remote_board.py."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from kharness import plan, runner
from kharness.build import kbuild
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.errors import DamagedCacheEntry, UsageError
from kharness.kernels import hosttree
from kharness.kernels.store import HeadersBundle
from kharness.runner import build, options, remote, ssh_boot
from kharness.targets import get_target
from kharness.testing.fake_board import FakeBoard
from kharness.testing.fake_guest import FakeGuest, Rule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
RELEASE = "6.1.0-50-amd64"
VERMAGIC = f"{RELEASE} SMP preempt mod_unload modversions "


def make_tree(root: Path, release: str = RELEASE, arch: str = "CONFIG_X86_64", symvers: bool = True) -> Path:
    """A kbuild tree as Debian's linux-headers-<release> has it, for ``release`` and ``arch``.
    Its kernel.release says the upstream version, as Debian's 6.1 headers' does."""
    root.mkdir(parents=True)
    (root / "Makefile").write_text("# kbuild's top Makefile\n")
    (root / ".config").write_text(f"CONFIG_64BIT=y\n{arch}=y\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14) "
                                  f"12.2.0\"\n")
    (root / "include/generated").mkdir(parents=True)
    (root / "include/generated/utsrelease.h").write_text(f'#define UTS_RELEASE "{release}"\n')
    (root / "include/config").mkdir(parents=True)
    (root / "include/config/kernel.release").write_text("6.1.176\n")
    (root / "scripts/basic").mkdir(parents=True)
    if symvers:
        (root / "Module.symvers").write_text("0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n")
    return root


@pytest.fixture
def board_run(tmp_path, monkeypatch):
    """Run a fixture module on a fake board: nothing may come from Debian's archive (resolving or
    unpacking a kernel fails the test); the build records the headers it got."""
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))

    def no_archive(*a, **k):
        raise AssertionError("a tree on the host needs nothing from Debian's archive")

    monkeypatch.setattr(plan.GuestPlan, "resolve", no_archive)
    monkeypatch.setattr(build, "ensure_headers", no_archive)
    monkeypatch.setattr(build, "pick_toolchain", lambda profile, spec: kbuild.Toolchain(
        "x86", "", "gcc", "gcc (Debian 12.2.0-14) 12.2.0"))
    agent = tmp_path / "kh-agent"
    agent.write_bytes(b"\x7fELF agent")
    monkeypatch.setattr(ssh_boot, "build_agent", lambda profile: agent)
    seen = {}

    def build_module(build_plan, headers, tc):
        seen["headers"] = headers
        (name,) = [m.name for m in build_plan.modules]
        ko = tmp_path / f"{name}.ko"
        ko.write_bytes(b"\x7fELF fake module")
        return BuildOutcome(ok=True, modules=[BuiltModule(name, ko, VERMAGIC, {})], diagnostics=[], log="",
                            duration=0.0, cached=False, command=["make"], build_dir=tmp_path)

    monkeypatch.setattr(build, "build_module", build_module)

    def go(board: FakeBoard | None = None, profile: str = "x86_64", **opts):
        def connect(o, asked):
            if board is None:
                raise AssertionError("refused before connecting to the board")
            return board, dataclasses.replace(get_target(profile), snapshot=False), board.release

        monkeypatch.setattr(remote, "connect", connect)
        opts.setdefault("remote", "pi@127.0.0.1:2222")
        r = runner.Run(runner.RunOptions(module_dir=FIXTURES / "init_enodev", **opts)).execute()
        runner.wait_for_teardown()
        return r

    go.seen = seen
    return go


def _board(release: str = RELEASE) -> FakeBoard:
    return FakeBoard(FakeGuest([Rule(r"modinfo -F vermagic", stdout=VERMAGIC + "\n")], release=release),
                     release=release)


def _refused(r, *words: str) -> str:
    assert r.status == "error" and r.exit_code == 2, r.summary
    assert r.error["kind"] == "usage" and "\n" not in r.summary
    for w in words:
        assert w in r.summary, r.summary
    return r.summary


# -- the module built against the tree -------------------------------------------------------------

def test_headers_dir_builds_against_the_tree_and_the_result_says_so(board_run, tmp_path):
    tree = make_tree(tmp_path / "linux-headers-6.1.0-50-amd64")
    board = _board()
    r = board_run(board, headers=tree)
    assert r.status == "pass", r.summary
    h = board_run.seen["headers"]
    assert h.build_dir == tree and h.root == tree and h.release == RELEASE and h.stamp
    assert r.kernel["release"] == RELEASE and r.kernel["packages"] == []
    assert r.kernel["headers"] == {"source": "headers-dir", "dir": str(tree), "module_symvers": True}
    assert f"--headers {tree}" in r.reproducer["kharness"]
    assert [c for c in board.g.commands if "insmod" in c] == ["kh-agent insmod /kh/init_enodev.ko"]


def test_kernel_tree_with_remote_is_the_boards_built_kernel(board_run, tmp_path):
    tree = make_tree(tmp_path / "linux")
    r = board_run(_board(), kernel_tree=tree)
    assert r.status == "pass", r.summary
    assert board_run.seen["headers"].build_dir == tree
    assert r.kernel["headers"]["source"] == "kernel-tree" and r.kernel.built_from is None
    assert f"--kernel-tree {tree}" in r.reproducer["kharness"]


def test_a_tree_without_module_symvers_is_warned_about_not_refused(board_run, tmp_path, capsys):
    tree = make_tree(tmp_path / "hdrs", symvers=False)
    r = board_run(_board(), headers=tree)
    assert r.status == "pass", r.summary
    assert r.kernel["headers"]["module_symvers"] is False
    assert "has no Module.symvers" in " ".join(capsys.readouterr().err.split())


def test_without_module_symvers_a_modversions_kernel_is_refused(board_run, tmp_path):
    """Such a kernel refuses a module without symbol versions ("no version for module_layout",
    seen on Debian's 6.1): a load failure that would wrongly be the module's."""
    tree = make_tree(tmp_path / "hdrs", symvers=False)
    with open(tree / ".config", "a") as f:
        f.write("CONFIG_MODVERSIONS=y\n")
    _refused(board_run(None, headers=tree), "has no Module.symvers, and its kernel has CONFIG_MODVERSIONS=y",
             "--build-on-remote")


# -- refused before anything is loaded -------------------------------------------------------------

def test_a_tree_for_another_release_is_refused_naming_both_and_build_on_remote(board_run, tmp_path):
    tree = make_tree(tmp_path / "hdrs", release="6.1.0-49-amd64")
    board = _board()
    summary = _refused(board_run(board, headers=tree), f"is for 6.1.0-49-amd64, the board runs {RELEASE}",
                       "--build-on-remote")
    assert summary.startswith(f"--headers {tree} ")
    assert not [c for c in board.g.commands if "insmod" in c] and "headers" not in board_run.seen


def test_a_tree_for_another_architecture_is_refused(board_run, tmp_path):
    tree = make_tree(tmp_path / "hdrs", arch="CONFIG_ARM64")
    board = _board()
    _refused(board_run(board, headers=tree), "another architecture", "its .config is for arm64, the board is x86_64")
    assert not [c for c in board.g.commands if "insmod" in c] and "headers" not in board_run.seen


def test_a_tree_of_the_other_byte_order_is_refused():
    config = "CONFIG_PPC64=y\nCONFIG_CPU_LITTLE_ENDIAN=y\n"
    assert hosttree.arch_mismatch(config, get_target("ppc64le")) is None
    assert "CONFIG_CPU_LITTLE_ENDIAN=y, the board is big-endian ppc64" in hosttree.arch_mismatch(
        config, get_target("ppc64"))
    assert "lacks CONFIG_ARM=y" in hosttree.arch_mismatch("CONFIG_MMU=y\n", get_target("rpi2"))


def _no_makefile(t: Path) -> None:
    (t / "Makefile").unlink()


def _no_config(t: Path) -> None:
    (t / ".config").unlink()


def _unprepared(t: Path) -> None:
    shutil.rmtree(t / "include")


def _no_scripts(t: Path) -> None:
    shutil.rmtree(t / "scripts")


def _common_elsewhere(t: Path) -> None:
    (t / "Makefile").write_text("include /usr/src/linux-headers-6.1.0-50-common-kh-absent/Makefile\n")


def _board_tools(t: Path) -> None:
    # fixdep as a board's build tree has it: an aarch64 program (ELF64, e_machine 183)
    (t / "scripts/basic/fixdep").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little")
                                             + bytes(44))


@pytest.mark.parametrize("spoil,words", [
    (None, ("does not exist",)),
    (_no_makefile, ("is not a kernel build tree (it has no Makefile)", "linux-headers-<release>")),
    (_no_config, ("has no .config",)),
    (_unprepared, ("is not prepared for building modules", "modules_prepare")),
    (_no_scripts, ("has no scripts/",)),
    (_common_elsewhere, ("its Makefile includes /usr/src/linux-headers-6.1.0-50-common-kh-absent/Makefile, "
                         "which does not exist on this host", "apt install linux-headers-<release>")),
    (_board_tools, ("scripts/basic/fixdep is a program for aarch64, not for this host", "--build-on-remote")),
], ids=["missing", "no-makefile", "no-config", "unprepared", "no-scripts", "common-elsewhere", "board-tools"])
def test_a_tree_that_cannot_build_is_refused_before_connecting(board_run, tmp_path, spoil, words):
    tree = tmp_path / "hdrs"
    if spoil is not None:
        make_tree(tree)
        spoil(tree)
    _refused(board_run(None, headers=tree), "--headers", *words)


def test_a_file_is_not_a_tree(board_run, tmp_path):
    f = tmp_path / "linux-headers.deb"
    f.write_bytes(b"!<arch>\n")
    _refused(board_run(None, kernel_tree=f), f"--kernel-tree {f} is not a directory")


@pytest.mark.parametrize("opts,words", [
    ({"headers": "H", "kernel_tree": "T"}, "--headers and --kernel-tree each say where the board kernel's headers are"),
    ({"headers": "H", "build_on_remote": True}, "--headers and --build-on-remote each say"),
    ({"kernel_tree": "T", "build_on_remote": True}, "--kernel-tree and --build-on-remote each say"),
    ({"headers": "H", "remote": None}, "--headers DIR is the kbuild tree of a board's kernel: it goes with --remote"),
    ({"kernel_tree": "T", "kernel_config": [Path("x.config")]}, "--remote tests on the board's own system"),
])
def test_conflicting_ways_to_the_headers_are_refused(board_run, tmp_path, opts, words):
    for k in ("headers", "kernel_tree"):
        if k in opts:
            opts[k] = make_tree(tmp_path / k)
    _refused(board_run(None, **opts), words)


# -- the pieces ------------------------------------------------------------------------------------

def test_the_release_is_utsrelease_h_then_kernel_release(tmp_path):
    """Debian's 6.1 headers say 6.1.176 in kernel.release: vermagic carries UTS_RELEASE."""
    t = make_tree(tmp_path / "t")
    assert hosttree.read_release(t) == RELEASE
    (t / "include/generated/utsrelease.h").unlink()
    assert hosttree.read_release(t) == "6.1.176"


def test_a_users_tree_is_never_checked_as_a_cache_entry_and_keys_its_builds(tmp_path):
    t = make_tree(tmp_path / "t")
    tree = hosttree.open_tree(t, "--headers").headers()
    kbuild.check_headers(tree)   # no seal: not a cache entry, nothing to check or discard
    with pytest.raises(DamagedCacheEntry):
        kbuild.check_headers(HeadersBundle(RELEASE, t, t))
    plan_ = type("P", (), {"directory": t, "ccflags": [], "modules": []})()
    tc = kbuild.Toolchain("x86", "", "gcc", "gcc 12")
    before = kbuild.build_key(plan_, tree, tc, [])
    (t / "Module.symvers").write_text("0x87654321\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n")   # rebuilt in place
    assert kbuild.build_key(plan_, hosttree.open_tree(t, "--headers").headers(), tc, []) != before


def test_the_reproducer_repeats_headers():
    opts = options.RunOptions(module_dir=Path("m"), remote="pi@pi", headers=Path("/h"))
    assert options.reproducer_cmd(opts, RELEASE) == "kharness run m --remote pi@pi --headers /h"
    assert opts.host_tree == ("--headers", Path("/h")) and opts.board_modules
    vm = options.RunOptions(module_dir=Path("m"), kernel_tree=Path("/src"))
    assert vm.host_tree is None and not vm.board_modules   # without --remote: a kernel to build


def test_check_for_board_accepts_the_boards_own_tree(tmp_path):
    tree = hosttree.open_tree(make_tree(tmp_path / "t"), "--headers")
    hosttree.check_for_board(tree, RELEASE, get_target("x86_64"))
    with pytest.raises(UsageError, match="the board runs 6.1.0-51-amd64"):
        hosttree.check_for_board(tree, "6.1.0-51-amd64", get_target("x86_64"))
