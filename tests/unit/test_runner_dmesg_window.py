"""The first dmesg check's window starts at the load, not at boot (issue 13, item 14), and a
restored guest's setup limit scales with --boot-timeout and the host's load.

The guest is a fake that keeps a kernel log and answers ``kh-agent dmesg-since NAME`` the way
kharness/hw/agent/kh-agent.c does (the lines since the previous call with NAME; the first call:
all of them). The runner code driving it - the boot look, the restored guest's setup, the load,
the check - is the real one; tests/integration/test_dmesg_window.py does the same on a real kernel.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import checks, runner
from kharness.modconfig import ModuleConfig
from kharness.runner import HEALTH_SEP, LOAD_MARK, SESSION_CURSOR, Run, RunOptions, restore_limit
from kharness.runner import boot, load
from kharness.targets import get_target
from kharness.vm import snapshot
from kharness.vm.channel import CommandResult
from kharness.vm.errors import CommandTimeout

BOOT_LOG = ["<5>[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP",
            "<4>[    0.812345] WARNING: nvram corruption detected: 0-length partition",
            "<6>[    2.261358] clocksource: Switched to clocksource tsc"]


class FakeGuest:
    """A guest whose only state is its kernel log, its loaded modules and kh-agent's cursors."""

    def __init__(self, log: list[str], cursors: dict[str, int] | None = None):
        self.log = list(log)
        self.cursors = dict(cursors or {})
        self.modules: list[str] = []
        self.commands: list[str] = []
        self.stall = False   # the restored guest's timers do not run: its first command never answers

    def _since(self, name: str) -> str:
        new = self.log[self.cursors.get(name, 0):]
        self.cursors[name] = len(self.log)
        return "".join(line + "\n" for line in new)

    def _one(self, cmd: str) -> str:
        argv = cmd.split()
        if argv[:2] == ["kh-agent", "dmesg-since"]:
            return self._since(argv[2] if len(argv) > 2 else "health")
        if argv[:2] == ["kh-agent", "health"]:
            return (f"12288\n{HEALTH_SEP}{self._since('health')}{HEALTH_SEP}"
                    + "".join(m + "\n" for m in self.modules) + HEALTH_SEP)
        if argv[:1] == ["insmod"]:
            name = Path(argv[1]).stem
            self.log.append(f"<6>[    5.000000] {name}: loaded")
            self.modules.append(name)
        return ""

    def run(self, command: str, timeout: float, stdin: bytes = b"") -> CommandResult:
        self.commands.append(command)
        if self.stall and "kh-agent restored" in command.split(" && ")[0]:
            raise CommandTimeout(f"command did not finish within {timeout:g}s")
        out = []
        # The runner's commands are simple lists joined by ";" and "&&" (no quoting in play here).
        for part in re.split(r"\s*(?:;|&&)\s*", command):
            silent = ">/dev/null" in part
            text = self._one(re.sub(r"\s*(?:2>&1|>/dev/null)", "", part).strip())
            if not silent:
                out.append(text)
        stdout = "".join(out)
        return CommandResult(command, 0, stdout, "", 0.01, len(stdout), 0)


def _run(guest: FakeGuest, tmp_path: Path, **opts) -> Run:
    run = Run(RunOptions(module_dir=tmp_path, **opts))
    run.profile = get_target("x86_64")
    run.guest = guest
    return run


def _load_and_check(run: Run, check: dict) -> checks.Check:
    modules = [SimpleNamespace(name="clean")]
    run.tested = {"clean"}
    load.load(run, modules, {"clean": {}}, ModuleConfig(), 10.0)
    c = checks.parse_check(Path("<test>"), 1, dict(check, kind="dmesg"))
    return run.run_check(c, checks.values_for(["clean"], {}), 10.0)


FORBID_BOOT_TEXT = [{"forbid": "Linux version"}, {"forbid": "WARNING"}]


@pytest.mark.parametrize("check", FORBID_BOOT_TEXT)
def test_first_dmesg_check_after_a_cold_boot_starts_at_the_load(tmp_path, check):
    guest = FakeGuest(BOOT_LOG)
    run = _run(guest, tmp_path)
    run.look("boot", 10.0, f"{LOAD_MARK}; {runner.HEALTH_CMD}")   # as the boot phase looks after a boot
    assert "Linux version" in run.result.dmesg["boot"]                # the boot phase still saw it all
    cr = _load_and_check(run, check)
    assert cr.status == "pass", cr.message
    assert "clean: loaded" in cr.stdout and "Linux version" not in cr.stdout


def test_first_dmesg_check_after_a_restore_starts_at_the_load(tmp_path):
    # The snapshot's guest ran its health look before the save: that cursor is at the end of boot,
    # the check's is nowhere yet (as in a real snapshot).
    guest = FakeGuest(BOOT_LOG, {"health": len(BOOT_LOG)})
    run = _run(guest, tmp_path)
    run.boot_log = "".join(line + "\n" for line in BOOT_LOG)
    run.first_look = boot.restored_setup(run, {"clean.ko": b"\0not an elf"}, 10.0)
    run.look("boot", 10.0)
    assert "Linux version" in run.result.dmesg["boot"]
    for check in FORBID_BOOT_TEXT:
        # the first check after the load; the second only sees what the first left
        cr = _load_and_check(run, check) if check is FORBID_BOOT_TEXT[0] else run.run_check(
            checks.parse_check(Path("<test>"), 2, dict(check, kind="dmesg")), {}, 10.0)
        assert cr.status == "pass", cr.message


def test_an_expect_is_not_satisfied_by_boot_text(tmp_path):
    run = _run(FakeGuest(BOOT_LOG), tmp_path)
    run.look("boot", 10.0, f"{LOAD_MARK}; {runner.HEALTH_CMD}")
    cr = _load_and_check(run, {"expect": "nvram corruption"})
    assert cr.status == "fail"
    cr = run.run_check(checks.parse_check(Path("<t>"), 2, {"kind": "dmesg", "expect": "^.*clean: loaded"}), {}, 10.0)
    assert cr.status == "fail"   # already seen by the first check: the window moved on


def test_the_load_mark_names_the_cursors_checks_and_sessions_read():
    assert "kh-agent dmesg-since step " in checks.STEP_CURSOR
    assert checks.command_for(checks.parse_check(Path("<t>"), 1, {"kind": "dmesg", "forbid": "x"}), {}) \
        == "kh-agent dmesg-since step"
    assert LOAD_MARK.split(" && ") == ["kh-agent dmesg-since step >/dev/null",
                                       f"kh-agent dmesg-since {SESSION_CURSOR} >/dev/null"]


# --------------------------------------------------------------------------------------------
# The restore limit
# --------------------------------------------------------------------------------------------

def test_restore_limit_is_the_probe_timeout_at_the_defaults():
    limit, why = restore_limit(runner.DEFAULT_BOOT_TIMEOUT, load=(0.3, 2))
    assert limit == snapshot.PROBE_TIMEOUT and why == f"{snapshot.PROBE_TIMEOUT:g}s = {snapshot.PROBE_TIMEOUT:g}s"


def test_restore_limit_grows_with_the_boot_timeout():
    limit, why = restore_limit(3 * runner.DEFAULT_BOOT_TIMEOUT, load=(0.0, 4))
    assert limit == 3 * snapshot.PROBE_TIMEOUT
    assert f"x3 for --boot-timeout {3 * runner.DEFAULT_BOOT_TIMEOUT:g}s" in why
    # a shorter --boot-timeout never makes a restore's limit shorter than the probe's own
    assert restore_limit(60, load=(0.0, 4))[0] == snapshot.PROBE_TIMEOUT


def test_restore_limit_grows_with_the_hosts_load_per_cpu():
    # four TCG guests on two cores: each runs at half speed
    limit, why = restore_limit(runner.DEFAULT_BOOT_TIMEOUT, load=(4.0, 2))
    assert limit == 2 * snapshot.PROBE_TIMEOUT and "load 4.00 on 2 CPU(s)" in why
    assert restore_limit(600, load=(6.0, 2))[0] == 2 * 3 * snapshot.PROBE_TIMEOUT
    assert restore_limit(runner.DEFAULT_BOOT_TIMEOUT, load=(1.9, 2))[0] == snapshot.PROBE_TIMEOUT


def test_restore_limit_never_exceeds_the_boot_timeout():
    limit, why = restore_limit(15, load=(8.0, 2))
    assert limit == 15 and "capped at --boot-timeout 15s" in why


def test_host_load_is_measured():
    busy, cpus = runner.host_load()
    assert busy >= 0 and cpus >= 1


def test_an_abandoned_restore_says_at_which_step_and_under_which_limit(tmp_path, monkeypatch):
    guest = FakeGuest(BOOT_LOG, {"health": len(BOOT_LOG)})
    guest.stall = True
    run = _run(guest, tmp_path, boot_timeout=900)
    run.workdir = tmp_path
    monkeypatch.setattr(runner, "host_load", lambda: (4.0, 2))
    # tests/integration/test_snapshot.py stalls a real restore by replacing the package's RESTORED_CMD
    monkeypatch.setattr(runner, "RESTORED_CMD", "sleep 30; " + runner.RESTORED_CMD)
    closed = []
    run.guest_factory = (lambda *a, **k: SimpleNamespace(
        argv=["qemu"], start=lambda: None, wait_restored=lambda t, rel: None,
        run=guest.run, close=lambda: closed.append(1)))
    monkeypatch.setattr(snapshot, "discard", lambda snap: None)
    snap_file = tmp_path / "snap.qcow2"
    snap_file.write_bytes(b"")
    snap = snapshot.Snapshot(snap_file, "x86_64-0123", "6.1.0-50-amd64", 1.0)
    spec = SimpleNamespace(release="6.1.0-50-amd64")
    assert boot.restore(run, snap, None, {"clean.ko": b"\0"}, spec.release, 10.0) is False
    note = run.result.boot_mode_note
    assert run.result.boot_mode == "cold" and closed == [1]
    assert note.startswith("restoring x86_64-0123 abandoned (at the setup command (timer probe, 1 file(s) in ")
    assert "did not finish within 60s" in note                       # 10 s x3 (boot timeout) x2 (load)
    assert "limit 60s = 10s, x3 for --boot-timeout 900s, x2 for the host's load 4.00 on 2 CPU(s)" in note
    assert note.endswith("; booted instead")
    assert guest.commands[0].startswith("sleep 30; kh-agent restored ")
