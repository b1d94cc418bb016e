"""The runner's verdict functions (kharness/runner/verdict.py) on plain data: no guest at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from kharness.errors import InfraError, ModuleFailure
from kharness.result.model import Result
from kharness.runner import verdict
from kharness.vm.errors import CommandTimeout, GuestDied

CONSOLE = Path(__file__).resolve().parents[1] / "data" / "console"
BUILD_TREE = "/root/.cache/kharness/builds/init_warn-6.1.0-50-amd64-705bd5253851877b/tree/modules/init_warn"


def test_reports_name_the_users_directory_not_the_build_tree():
    text = (CONSOLE / "x86_64-6.1-init_warn.log").read_text()
    (f,) = verdict.scan(text, "load", tested={"init_warn"}, shadow_map=(BUILD_TREE, "/home/me/init_warn"))
    assert f.summary.startswith("WARNING: CPU: 0 PID: 108 at /home/me/init_warn/init_warn.c:18 ")
    assert BUILD_TREE not in f.report and f.blocking and f.phase == "load"
    (f,) = verdict.scan(text, "boot", tested={"init_warn"}, baseline=True)
    assert not f.blocking and BUILD_TREE in f.summary


@pytest.mark.parametrize("what,state,lost", [
    ("insmod m", "live", True), ("insmod m", "coming", False), ("insmod m", None, False),
    ("rmmod m", "gone", True), ("rmmod m", "going", False), ("check 'x'", "live", False),
])
def test_a_channel_is_lost_only_when_the_console_says_the_command_finished(what, state, lost):
    assert (verdict.channel_lost(what, state) is not None) == lost


def test_a_dead_guest_without_a_panic_names_the_report_it_printed():
    text = (CONSOLE / "x86_64-6.1-exit_bug.log").read_text()
    found = verdict.blocking(verdict.scan(text, "unload", tested={"exit_bug"}))
    msg, extra = verdict.guest_trouble(GuestDied("QEMU exited"), "rmmod exit_bug", "unload", text, found,
                                       asked_sysrq=False)
    assert msg.startswith("guest stopped during rmmod exit_bug: QEMU exited (bug: kernel BUG at ")
    assert extra == []


def test_a_timeout_without_sysrq_is_still_a_hang_finding():
    msg, (hang,) = verdict.guest_trouble(CommandTimeout("no answer"), "check 'x'", "check", "", [],
                                         asked_sysrq=False)
    assert msg == "guest stopped during check 'x': no answer"
    assert (hang.kind, hang.phase, hang.blocking) == ("hang", "check", True)


def test_expect_dmesg_matches_placeholder_values_literally():
    values = {"param.greeting": "1.5"}
    assert verdict.expect_dmesg_miss("load", r"greeting is {param.greeting}$", values, "m: greeting is 1.5") is None
    assert "did not match expect_dmesg" in verdict.expect_dmesg_miss("load", r"greeting is {param.greeting}$",
                                                                     values, "m: greeting is 175")
    assert verdict.expect_dmesg_miss("load", None, values, "") is None


def test_settle_turns_a_running_phase_into_an_error_and_keeps_a_failure():
    r = Result("/m", "x86_64", "default")
    r.phase("build").status = "pass"
    r.phase("image").status = "running"
    verdict.settle(r, InfraError("disk full"))
    assert (r.status, r.summary, r.phase("image").status, r.phase("image").message) == \
        ("error", "disk full", "error", "disk full")
    r = Result("/m", "x86_64", "default")
    verdict.settle(r, ModuleFailure("load", "insmod m failed"))
    assert (r.status, r.summary) == ("fail", "load: insmod m failed")


def test_one_phase_context_keeps_every_phases_book(tmp_path):
    from kharness.runner import RunOptions
    from kharness.runner.context import Context

    run = Context(RunOptions(module_dir=tmp_path))
    with run.phase("build") as p:
        p.message = "1 module(s)"
    with pytest.raises(ModuleFailure):
        with run.phase("image"):
            raise run.fail("image", "no room")
    with pytest.raises(OSError):
        with run.phase("boot"):
            raise OSError("gone")
    r = run.result
    assert [(p.status, p.message) for p in r.phases[:3]] == [("pass", "1 module(s)"), ("fail", "no room"),
                                                             ("running", "")]
    assert all(p.duration >= 0 for p in r.phases[:3])
    verdict.settle(r, InfraError("gone"))
    assert r.phase("boot").status == "error" and r.phase("image").status == "fail"
