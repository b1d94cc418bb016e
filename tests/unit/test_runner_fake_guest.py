"""A run's verdict without QEMU: ``Run(opts, guest_factory=...)`` with the fake guest
(kharness/testing/fake_guest.py) replaying what a real 6.1 guest answered, and the kernel text of
real runs (tests/data/console). Only the build and image phases' functions are replaced (no
compiler, no kernel download); everything from the boot look on is the real runner: commands,
health looks, findings, hang and channel diagnosis, verdict. Each case is judged in milliseconds.

tests/integration/test_run_x86_64.py and test_fault_corpus.py run the same fixtures on a real kernel.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import plan, runner
from kharness.build.diagnostics import parse_diagnostics
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.kernels.resolve import KernelSpec
from kharness.runner import boot, build, prepare
from kharness.testing.fake_guest import FakeGuest, Rule
from kharness.vm.errors import CommandTimeout, GuestDied

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
CONSOLE = Path(__file__).resolve().parents[1] / "data" / "console"
RELEASE = "6.1.0-50-amd64"
BOOT_LOG = ("<5>[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\n"
            "<6>[    2.261358] clocksource: Switched to clocksource tsc\n")
OUT_OF_TREE = 4096 | 8192   # O and E: what loading any module built here sets
DIED, WARNED = 128, 512     # taint D (an oops) and W (a WARN)


def recorded(name: str) -> str:
    return (CONSOLE / f"x86_64-6.1-{name}.log").read_text()


@pytest.fixture
def no_build(tmp_path, monkeypatch):
    """The build and image phases' stand-ins: a 'built' module, a cached kernel and image.
    ``no_build.failing = (error, log)`` makes the build fail as gcc would."""
    stub = SimpleNamespace(failing=None)
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    spec = KernelSpec(RELEASE, "6.1", "bookworm", "6.1.176-1", (), (), "gcc-12")
    monkeypatch.setattr(prepare, "qemu_binary", lambda profile: "qemu-system-x86_64")
    monkeypatch.setattr(plan.GuestPlan, "resolve", lambda self: (spec, None))
    monkeypatch.setattr(build, "ensure_headers", lambda spec: SimpleNamespace())
    monkeypatch.setattr(build, "pick_toolchain", lambda profile, spec: SimpleNamespace(
        version="gcc 12.2.0", note="", sysroot=None))

    def kbuild(build_plan, headers, tc):
        (name,) = [m.name for m in build_plan.modules]   # what the real build would make
        if stub.failing:
            error, log = stub.failing
            return BuildOutcome(ok=False, modules=[], diagnostics=parse_diagnostics(log), log=log, duration=0.0,
                                cached=False, command=["make"], build_dir=tmp_path, error=error)
        ko = tmp_path / f"{name}.ko"
        ko.write_bytes(b"\x7fELF fake module")
        return BuildOutcome(ok=True, modules=[BuiltModule(name, ko, f"{RELEASE} SMP preempt mod_unload", {})],
                            diagnostics=[], log="", duration=0.0, cached=True, command=["make"], build_dir=tmp_path)

    monkeypatch.setattr(build, "build_module", kbuild)   # the module under test's build (kharness.build.route)
    monkeypatch.setattr(plan.GuestPlan, "image", lambda self, spec, built: (
        SimpleNamespace(kernel=tmp_path / "vmlinuz"),
        SimpleNamespace(path=tmp_path / "base.cpio.gz", key="0123", busybox={"name": "busybox-static"}), None))
    monkeypatch.setattr(boot, "write_run_initrd", lambda base, payload, dest: dest)
    return stub


def _run(module: str, guest: FakeGuest):
    opts = runner.RunOptions(module_dir=FIXTURES / module, cold=True, accel="tcg")
    return runner.Run(opts, guest_factory=lambda *args: guest).execute()


def _blocking(r) -> list[str]:
    return [_get(f, "kind") for f in r.findings if _get(f, "blocking")]


def _statuses(r) -> list[str]:
    return [str(p.status) for p in r.phases]


def _get(finding, key):
    return finding[key] if isinstance(finding, dict) else getattr(finding, key)


def _guest(*rules: Rule, **kw) -> FakeGuest:
    return FakeGuest(list(rules), kernel_log=BOOT_LOG, release=RELEASE, **kw)


# --- pass ----------------------------------------------------------------------------------------

def test_the_same_module_passes_when_its_init_succeeds(no_build):
    """The test below can fail: with a clean insmod the verdict is a pass."""
    guest = _guest()
    r = _run("init_enodev", guest)
    assert r.status == "pass", r.summary
    assert r.summary == "built, loaded, checked and unloaded cleanly"
    assert _statuses(r) == ["pass"] * 6 and not _blocking(r)
    assert [c for c in guest.commands if c.startswith(("insmod", "rmmod"))] == \
        ["insmod /kh/init_enodev.ko", "rmmod init_enodev"]
    runner.wait_for_teardown()
    assert guest.closed                                                   # stopped (in the background)
    assert r.artifacts["console_log_tail"] == guest.console_text()


# --- build error ---------------------------------------------------------------------------------

def test_a_build_error_fails_the_build_and_boots_nothing(no_build):
    log = ("build_error.c: In function 'build_error_init':\n"
           "build_error.c:17:16: error: 'kharness_undeclared_identifier' undeclared (first use in this function)\n")
    no_build.failing = ("the module did not compile: 1 error", log)
    guest = _guest()
    r = _run("build_error", guest)
    assert (r.status, r.summary) == ("fail", "build: the module did not compile: 1 error")
    assert _statuses(r) == ["fail"] + ["skipped"] * 5
    assert "kharness_undeclared_identifier" in r.phase("build").log
    assert r.build.diagnostics[0]["severity"] == "error"
    assert guest.commands == [] and r.exit_code == 1


# --- init returns an error -----------------------------------------------------------------------

def test_init_returning_enodev_fails_the_load(no_build):
    guest = _guest(Rule(r"^insmod /kh/init_enodev\.ko$", rc=1, taint=OUT_OF_TREE,
                        stderr="insmod: can't insert '/kh/init_enodev.ko': No such device\n",
                        kernel_log="<4>[    4.652644] init_enodev: loading out-of-tree module taints kernel."))
    r = _run("init_enodev", guest)
    assert (r.status, r.summary.split(":")[0]) == ("fail", "load")
    load = r.phase("load")
    assert load.status == "fail" and "No such device" in load.message
    assert _statuses(r)[:3] == ["pass", "pass", "pass"]                  # build, image, boot
    assert not _blocking(r)                                               # no kernel report, no bad taint
    assert guest.closed                                                   # torn down
    assert guest.commands[0].endswith("; kh-agent health")                # the boot look came first


# --- kernel reports in init ----------------------------------------------------------------------

def test_an_oops_in_init_fails_the_load_with_the_kernels_report(no_build):
    # The oops kills insmod (the shell says "Killed", exit 137): its report explains the failure.
    guest = _guest(Rule(r"^insmod /kh/init_oops\.ko$", rc=137, stderr="Killed\n", taint=OUT_OF_TREE | DIED,
                        kernel_log=recorded("init_oops")))
    r = _run("init_oops", guest)
    assert r.status == "fail"
    assert r.summary == ("load: kernel reported null_deref during insmod init_oops: BUG: kernel NULL pointer "
                         "dereference, address: 0000000000000000 (insmod: Killed)")
    assert _blocking(r)[0] == "null_deref" and "D" in r.taint.flags
    assert r.dmesg["load"].count("init_oops_init") >= 1 and guest.closed


def test_a_warn_in_init_fails_the_load_though_insmod_succeeded(no_build):
    guest = _guest(Rule(r"^insmod /kh/init_warn\.ko$", taint=OUT_OF_TREE | WARNED, kernel_log=recorded("init_warn")))
    r = _run("init_warn", guest)
    assert r.status == "fail" and r.summary.startswith("load: kernel reported warning: WARNING: CPU: 0 PID: 108 at ")
    assert r.summary.endswith("init_warn.c:18 init_warn_init+0x1d/0x1000 [init_warn]")
    assert _blocking(r) == ["warning", "taint"]          # the report, and the W taint it left
    assert [c for c in guest.commands if c.startswith("rmmod")] == []     # no unload after a failed load


def test_a_panic_in_init_is_the_modules_fault(no_build):
    guest = _guest(Rule(r"^insmod /kh/init_panic\.ko$", kernel_log=recorded("init_panic"),
                        raises=GuestDied("QEMU exited (the guest panicked)", panic=True)))
    r = _run("init_panic", guest)
    assert (r.status, r.summary) == ("fail", "load: kernel panic during insmod init_panic: Kernel panic - not "
                                             "syncing: kharness fixture: deliberate panic")
    assert "panic" in _blocking(r)
    assert "deliberate panic" in r.phase("load").log and "Kernel Offset" in r.artifacts["console_log_tail"]
    assert guest.closed


# --- hangs ---------------------------------------------------------------------------------------

def _hang_text(log: str) -> tuple[str, str]:
    """A recorded hang: what the console showed before the timeout, and what sysrq-l/w printed."""
    i = log.index("sysrq: Show backtrace")
    start = log.rindex("\n", 0, i) + 1
    return log[:start], log[start:]


def test_a_hang_in_init_is_named_with_the_stuck_frame(no_build):
    before, sysrq = _hang_text(recorded("init_hang"))
    guest = _guest(Rule(r"^insmod /kh/init_hang\.ko$", kernel_log=before,
                        raises=CommandTimeout("command did not finish within 60s")),
                   module_states={"init_hang": "coming"}, sysrq_text=sysrq)
    r = _run("init_hang", guest)
    assert r.status == "fail"
    assert r.summary == ("load: insmod init_hang did not return within its timeout (hang), "
                         "stuck in init_hang_init+0x25/0x1000 [init_hang]")
    assert _blocking(r) == ["hang"]
    hang = next(f for f in r.findings if _get(f, "kind") == "hang")
    assert "Show Blocked State" in _get(hang, "report") and _get(hang, "phase") == "load"
    assert guest.sysrqs == ["lw"] and guest.closed


def test_a_hang_in_exit_fails_the_unload(no_build):
    # The recorded init hang's blocked-task dump, as the same wait looks from rmmod's exit call.
    before, sysrq = _hang_text(recorded("init_hang"))
    sysrq = (sysrq.replace("init_hang_init+0x25/0x1000 [init_hang]", "exit_hang_exit+0x2a/0x40 [exit_hang]")
             .replace("do_one_initcall+0x59/0x220", "__do_sys_delete_module+0x1a5/0x2e0")
             .replace("task:insmod ", "task:rmmod  "))
    guest = _guest(Rule(r"^rmmod exit_hang$", kernel_log="[   9.1] exit_hang: waiting for ever",
                        raises=CommandTimeout("command did not finish within 60s")),
                   module_states={"exit_hang": "going"}, sysrq_text=sysrq)
    r = _run("exit_hang", guest)
    assert r.summary == ("unload: rmmod exit_hang did not return within its timeout (hang), "
                         "stuck in exit_hang_exit+0x2a/0x40 [exit_hang]")
    assert _statuses(r) == ["pass"] * 5 + ["fail"] and _blocking(r) == ["hang"]


# --- the module silenced the channel -------------------------------------------------------------

def test_a_silenced_channel_is_not_called_a_hang(no_build):
    # insmod never answers, but the console says the module is live: its init returned.
    guest = _guest(Rule(r"^insmod /kh/channel_kill\.ko$", kernel_log="[   4.3] channel_kill: closing hvc1",
                        raises=CommandTimeout("command did not finish within 60s")),
                   module_states={"channel_kill": "live"}, sysrq_text="must not be asked for")
    r = _run("channel_kill", guest)
    assert r.status == "fail"
    assert r.summary.startswith("load: the command channel went silent during insmod channel_kill: its init "
                                "returned (the guest still answers on the console)")
    assert _blocking(r) == ["channel_lost"]
    lost = r.findings[-1]
    assert _get(lost, "module") == "channel_kill" and "closing hvc1" in _get(lost, "report")
    assert guest.sysrqs == [] and "must not be asked for" not in r.phase("load").log


def test_the_same_timeout_with_the_module_still_coming_is_a_hang(no_build):
    """The test above can fail: the module state alone tells a lost channel from a hang."""
    guest = _guest(Rule(r"^insmod /kh/channel_kill\.ko$", raises=CommandTimeout("command did not finish")),
                   module_states={"channel_kill": "coming"}, sysrq_text="sysrq: Show Blocked State\n")
    r = _run("channel_kill", guest)
    assert r.summary == "load: insmod channel_kill did not return within its timeout (hang)"
    assert _blocking(r) == ["hang"]


# --- a Session drives the same run through its public API ----------------------------------------

def test_a_session_drives_the_run_through_its_public_api(no_build):
    from kharness.errors import ModuleFailure
    from kharness.session import Session

    guest = _guest(Rule(r"^cat /proc/version$", stdout="Linux version 6.1.0-50-amd64\n"),
                   Rule(r"^poke$", kernel_log=recorded("init_warn"), taint=WARNED))
    run = runner.Run(runner.RunOptions(module_dir=FIXTURES / "init_enodev", cold=True, accel="tcg"),
                     guest_factory=lambda *args: guest)
    try:
        run.up()
        s = Session(run)
        assert s.proc.read("/proc/version").startswith("Linux version")
        assert s.values["module"] == "init_enodev" and s.health() == []
        s.run("poke")
        assert [f.kind for f in s.health()] == ["warning", "taint"]
        run.down()
    finally:
        run.close()
    assert guest.closed and run.guest is None
    assert [c for c in guest.commands if c.startswith(("insmod", "rmmod"))] == \
        ["insmod /kh/init_enodev.ko", "rmmod init_enodev"]
    # a step that hangs fails the session's phase with the same diagnosis as a run
    guest = _guest(Rule(r"^sleep 100$", raises=CommandTimeout("command did not finish")), sysrq_text="stuck\n")
    run = runner.Run(runner.RunOptions(module_dir=FIXTURES / "init_enodev", cold=True, accel="tcg"),
                     guest_factory=lambda *args: guest)
    run.up()
    with pytest.raises(ModuleFailure, match="did not return within its timeout"):
        Session(run).run("sleep 100")
    run.close()
    assert run.result.phase("check").status == "fail" and guest.closed


def test_a_report_printed_while_a_step_hung_is_judged_with_it(no_build):
    # rpi2's four CPUs: the soft lockup report comes out while insmod spins, before the harness
    # asks for sysrq backtraces; the verdict must see it, not only what sysrq printed after.
    log = (CONSOLE / "rpi2-6.1-init_softlockup.log").read_text()
    cut = log.index("sysrq")
    guest = _guest(Rule(r"^insmod /kh/init_softlockup\.ko$", kernel_log=log[:cut],
                        raises=CommandTimeout("command did not finish within 60s")),
                   module_states={"init_softlockup": "coming"}, sysrq_text=log[cut:])
    r = _run("init_softlockup", guest)
    assert r.status == "fail"
    assert "soft_lockup" in _blocking(r) and "hang" in _blocking(r)
    lockup = next(f for f in r.findings if _get(f, "kind") == "soft_lockup")
    assert _get(lockup, "module") == "init_softlockup" and _get(lockup, "phase") == "load"
