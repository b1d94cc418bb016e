"""``kharness run --remote``: the runner's half, judged with a fake board (recorded replies, no
SSH): which target a board's `uname -m` picks, the vermagic check before anything is loaded, files
delivered into /kh, and the verdict when a board stops answering after insmod.

The SSH half (paramiko against a real sshd) is tests/unit/test_ssh_*.py; the whole path against a
real Debian guest's sshd is tests/integration/test_remote_board.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import plan, runner
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.errors import UsageError
from kharness.kernels.resolve import KernelSpec
from kharness.runner import build, remote, ssh_boot
from kharness.targets import get_target
from kharness.testing.fake_board import FakeBoard
from kharness.testing.fake_guest import FakeGuest, Rule
from kharness.vm.errors import GuestDied

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
RELEASE = "6.1.0-50-amd64"
VERMAGIC = f"{RELEASE} SMP preempt mod_unload modversions "


@pytest.fixture
def board_run(tmp_path, monkeypatch):
    """Run a fixture module on a fake board: the build is stubbed (a module with ``vermagic``)."""
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    spec = KernelSpec(RELEASE, "6.1", "bookworm", "6.1.176-1", (), (), "gcc-12")
    monkeypatch.setattr(plan.GuestPlan, "resolve", lambda self: (spec, None))
    monkeypatch.setattr(build, "ensure_headers", lambda spec: SimpleNamespace(build_dir=tmp_path / "headers"))
    monkeypatch.setattr(build, "pick_toolchain", lambda profile, spec: SimpleNamespace(
        version="gcc 12.2.0", note="", sysroot=None))
    agent = tmp_path / "kh-agent"
    agent.write_bytes(b"\x7fELF agent")
    monkeypatch.setattr(ssh_boot, "build_agent", lambda profile: agent)
    state = SimpleNamespace(vermagic=VERMAGIC)

    def kbuild(build_plan, headers, tc):
        (name,) = [m.name for m in build_plan.modules]
        ko = tmp_path / f"{name}.ko"
        ko.write_bytes(b"\x7fELF fake module")
        return BuildOutcome(ok=True, modules=[BuiltModule(name, ko, state.vermagic, {})], diagnostics=[], log="",
                            duration=0.0, cached=True, command=["make"], build_dir=tmp_path)

    monkeypatch.setattr(build, "build_module", kbuild)

    def go(module: str, board: FakeBoard):
        profile = dataclasses.replace(get_target("x86_64"), snapshot=False)
        monkeypatch.setattr(remote, "connect", lambda opts, asked: (board, profile, RELEASE))
        opts = runner.RunOptions(module_dir=FIXTURES / module, remote="pi@127.0.0.1:2222")
        r = runner.Run(opts).execute()
        runner.wait_for_teardown()
        return r

    go.state, go.tmp = state, tmp_path
    return go


def _board(*rules: Rule, reachable: bool = True, modinfo: str = VERMAGIC) -> FakeBoard:
    rules = (Rule(r"modinfo -F vermagic", stdout=modinfo + "\n"), *rules)
    return FakeBoard(FakeGuest(list(rules), release=RELEASE), reachable, RELEASE)


def test_a_module_passes_on_a_board_and_its_files_went_to_kh(board_run):
    board = _board()
    r = board_run("init_enodev", board)
    assert r.status == "pass", r.summary
    assert r.guest == {"kind": "remote", "address": "pi@127.0.0.1:2222", "machine": "x86_64"}
    assert "/kh/init_enodev.ko" in board.g.files and board.agent == b"\x7fELF agent"
    # kh-agent's insmod/rmmod on a board (kharness.runner.context.AGENT_MODULE_TOOLS)
    cmds = [c for c in board.g.commands if c.startswith(("kh-agent insmod", "kh-agent rmmod", "insmod", "rmmod"))]
    assert cmds == ["kh-agent insmod /kh/init_enodev.ko", "kh-agent rmmod init_enodev"]
    assert board.g.closed                      # closing is what cleans the board (kharness.vm.ssh)
    assert "qemu" not in r.reproducer
    assert "--remote pi@127.0.0.1:2222" in r.reproducer["kharness"] and "--kernel" not in r.reproducer["kharness"]
    # Debian's headers for the board's release, as unpacked in the cache
    assert r.kernel["headers"] == {"source": "archive", "dir": str(board_run.tmp / "headers")}


def test_a_board_that_stops_answering_after_insmod_is_unreachable_likely_a_panic(board_run):
    board = _board(Rule(r"^kh-agent insmod /kh/init_enodev\.ko", raises=GuestDied("the connection was lost")),
                   reachable=False)
    r = board_run("init_enodev", board)
    assert r.status == "fail" and r.exit_code == 1
    assert r.summary.startswith("load: unreachable "), r.summary
    assert r.summary.endswith("s after insmod: likely panic or hang"), r.summary
    assert board.asked_reachable == 1
    assert any(f.kind == "hang" and f.blocking for f in r.findings)


def test_a_board_that_still_answers_is_not_called_unreachable(board_run):
    """The test above can fail: a dropped command on a board whose sshd answers is no panic."""
    board = _board(Rule(r"^kh-agent insmod /kh/init_enodev\.ko", raises=GuestDied("the connection was lost")))
    r = board_run("init_enodev", board)
    assert r.status == "fail" and "unreachable" not in r.summary


def test_a_module_built_for_another_kernel_is_refused_before_loading(board_run):
    """The build checks the release (a build for another one fails there); the board's own
    modules tell the rest (a kernel rebuilt with other options under the same release)."""
    board = _board(modinfo=f"{RELEASE} SMP mod_unload aarch64")
    r = board_run("init_enodev", board)
    assert r.status == "error" and r.exit_code == 2
    assert "vermagic mismatch" in r.summary and "SMP mod_unload aarch64" in r.summary
    assert not [c for c in board.g.commands if c.startswith(("insmod", "kh-agent insmod"))]


def test_vermagic_compares_the_rest_with_a_module_the_board_has():
    m = BuiltModule("m", Path("m.ko"), VERMAGIC, {})
    assert remote.vermagic_mismatch([m], RELEASE, VERMAGIC) is None
    assert remote.vermagic_mismatch([m], RELEASE, None) is None
    assert "the board's modules" in remote.vermagic_mismatch([m], RELEASE, f"{RELEASE} SMP mod_unload ")


@pytest.mark.parametrize("machine,endian,asked,want", [
    ("x86_64", "little", None, "x86_64"), ("aarch64", "little", None, "arm64"), ("aarch64", "little", "rpi3", "rpi3"),
    ("armv7l", "little", None, "rpi2"), ("ppc64le", "little", None, "ppc64le"), ("ppc64", "big", None, "ppc64")])
def test_the_board_picks_its_target(machine, endian, asked, want):
    assert remote.profile_for(machine, endian, asked).name == want


def test_a_target_that_cannot_serve_the_board_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot serve"):
        remote.profile_for("aarch64", "little", "x86_64")
    with pytest.raises(UsageError, match="no target profile"):
        remote.profile_for("riscv64", "little", None)


def test_closing_the_board_unloads_only_what_was_not_there_before(tmp_path):
    """The close-time command, run by a real shell against a stand-in /proc/modules and rmmod:
    every module loaded since connecting is removed, newest first; the board's own stay."""
    import subprocess

    modules = tmp_path / "modules"
    modules.write_text("khdemo 16384 0 - Live 0x0\nvideodev 1 1 khdemo, Live 0x0\next4 1 1 - Live 0x0\n")
    rmmod = tmp_path / "rmmod"
    rmmod.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/removed\n')
    rmmod.chmod(0o755)
    cmd = remote.unload_new_command(["ext4", "bad;name"]).replace("/proc/modules", str(modules))
    subprocess.run(["sh", "-c", cmd], check=True, env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    removed = (tmp_path / "removed").read_text().split()
    assert removed[:2] == ["khdemo", "videodev"] and "ext4" not in removed


def test_the_board_wrapper_unloads_on_close_and_passes_the_rest_through():
    board = _board()
    board.transport = SimpleNamespace(is_active=lambda: True)
    wrapped = remote.LeavesModulesAsFound(board, ["ext4"])
    assert wrapped.release == RELEASE and wrapped.reachable(1)
    wrapped.release = "x"
    assert board.release == "x"
    board.g.rules.append(Rule(r"^for pass in", rc=0))
    wrapped.close()
    assert board.g.commands[-1].startswith("for pass in 1 2 3") and board.g.closed
