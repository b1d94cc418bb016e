"""Program checks through the runner with the fake guest (kharness/testing/fake_guest.py): the
programs compiled in the build phase (the host's real gcc, a private cache), carried in the
payload, a background program stopped and judged after the last check and before the health look
and the unload, a compile error failing the build before anything boots.

The module build and the image are stand-ins, as in test_runner_fake_guest.py. The same fixture
in a real guest: tests/integration/test_programs.py."""

from __future__ import annotations

import json
import stat
import shutil
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest

from kharness import plan, runner
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.kernels.resolve import KernelSpec
from kharness.result.schema import json_schema, strict
from kharness.runner import image as runner_image
from kharness.runner import boot, build, prepare
from kharness.testing.fake_guest import FakeGuest, Rule

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "modules" / "progbuf"
RELEASE = "6.1.0-50-amd64"
BOOT_LOG = "<5>[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\n"
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")


@pytest.fixture
def staged(tmp_path, monkeypatch):
    """The module build and image stand-ins; ``staged.payload``: what the initrd would carry."""
    stub = SimpleNamespace(payload=None)
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    spec = KernelSpec(RELEASE, "6.1", "bookworm", "6.1.176-1", (), (), "gcc-12")
    monkeypatch.setattr(prepare, "qemu_binary", lambda profile: "qemu-system-x86_64")
    monkeypatch.setattr(plan.GuestPlan, "resolve", lambda self: (spec, None))
    monkeypatch.setattr(build, "ensure_headers", lambda spec: SimpleNamespace())
    monkeypatch.setattr(build, "pick_toolchain", lambda profile, spec: SimpleNamespace(
        version="gcc 12.2.0", note="", sysroot=None))

    def kbuild(build_plan, headers, tc):
        ko = tmp_path / "progbuf.ko"
        ko.write_bytes(b"\x7fELF fake module")
        return BuildOutcome(ok=True, modules=[BuiltModule("progbuf", ko, f"{RELEASE} SMP preempt mod_unload", {})],
                            diagnostics=[], log="", duration=0.0, cached=True, command=["make"], build_dir=tmp_path)

    def initrd(base, payload, dest):
        stub.payload = payload
        return dest

    monkeypatch.setattr(build, "build_module", kbuild)
    monkeypatch.setattr(plan.GuestPlan, "image", lambda self, spec, built: (
        SimpleNamespace(kernel=tmp_path / "vmlinuz"),
        SimpleNamespace(path=tmp_path / "base.cpio.gz", key="0123", busybox={"name": "busybox-static"}), None))
    monkeypatch.setattr(boot, "write_run_initrd", initrd)
    # The programs ride along with the run's modules (not baked into an image of their own, which
    # a slow command channel asks for: tests/unit/test_runner_real_drivers.py).
    monkeypatch.setattr(runner_image, "RIDE_ALONG_SECONDS", 1e9)
    return stub


def _copy(tmp_path: Path, toml: str | None = None) -> Path:
    d = tmp_path / "progbuf"
    shutil.copytree(FIXTURE, d)
    if toml is not None:
        (d / "kharness.toml").write_text(toml)
    return d


def _run(d: Path, guest: FakeGuest):
    return runner.Run(runner.RunOptions(module_dir=d, cold=True, accel="tcg"), guest_factory=lambda *a: guest).execute()


EXPECTED = (FIXTURE / "test.expected").read_text()
STARTED = Rule(r"mkdir -p /tmp/kh-bg/\d+ && cd /tmp && \{ \( /kh/bin/reader ", stdout="157\n")
UNBLOCK = Rule(r"pidof reader")
TEST = Rule(r"^kh-agent dmesg-since step >/dev/null 2>&1; cd /tmp && /kh/bin/test$", stdout=EXPECTED)
OUTPUT = Rule(r"^cat /tmp/kh-bg/\d+/out", stdout="reader waiting\nreader got: ping\n")


def test_programs_are_built_carried_run_and_the_background_one_judged_before_the_unload(tmp_path, staged):
    guest = FakeGuest([STARTED, UNBLOCK, TEST, Rule(r"kill -TERM", stdout="exited 0\n"), OUTPUT],
                      kernel_log=BOOT_LOG, release=RELEASE)
    r = _run(_copy(tmp_path), guest)
    assert r.status == "pass", r.summary
    assert sorted(staged.payload) == ["bin/reader", "bin/test", "progbuf.ko"]
    assert staged.payload["bin/test"][:4] == b"\x7fELF"
    assert [(p["name"], p["guest_path"], p["cached"]) for p in r.programs] == [
        ("reader", "/kh/bin/reader", False), ("test", "/kh/bin/test", False)]
    assert r.phase("build").message.endswith(", 2 program(s)")
    reader, unblock, test = r.checks
    assert (reader.status, reader.rc, reader.background) == ("pass", 0, {"pid": 157, "ended": "exited"})
    assert reader.stdout == "reader waiting\nreader got: ping\n" and "exited by itself" in reader.message
    assert test.name == "test.c" and test.stdout == EXPECTED and test.status == "pass"
    # Stopped after the last check, before the check phase's health look and the rmmod.
    cmds = guest.commands
    stop = next(i for i, c in enumerate(cmds) if "kill -TERM" in c)
    assert stop > next(i for i, c in enumerate(cmds) if "/kh/bin/test" in c)
    look = next(i for i, c in enumerate(cmds) if i > stop and c == "kh-agent health")
    assert look < next(i for i, c in enumerate(cmds) if c.startswith("rmmod"))
    doc = r.to_dict()
    jsonschema.validate(doc, strict(json_schema()))
    assert "background" not in doc["checks"][2] and doc["checks"][0]["background"]["ended"] == "exited"
    json.dumps(doc)
    # A second run reuses the cached programs.
    r2 = _run(_copy(tmp_path / "again"), FakeGuest([STARTED, UNBLOCK, TEST, Rule(r"kill -TERM", stdout="exited 0\n"),
                                                    OUTPUT], kernel_log=BOOT_LOG, release=RELEASE))
    assert r2.status == "pass" and r2.phase("build").message.endswith("2 program(s)")


def test_a_background_program_left_blocked_is_stopped_and_judged_by_its_output(tmp_path, staged):
    toml = ('[[check]]\nkind = "program"\nsource = "tests/reader.c"\nbackground = true\n'
            "expect_stdout = '\\Areader waiting\\n\\Z'\n")
    guest = FakeGuest([STARTED, Rule(r"kill -TERM", stdout="stopped 143\n"),
                       Rule(r"^cat /tmp/kh-bg/\d+/out", stdout="reader waiting\n")],
                      kernel_log=BOOT_LOG, release=RELEASE)
    r = _run(_copy(tmp_path, toml), guest)
    assert r.status == "pass", r.summary
    (reader,) = r.checks
    assert reader.background["ended"] == "stopped" and reader.rc == 143       # rc not judged: stopped
    assert "stopped with SIGTERM" in reader.message
    assert r.phase("unload").status == "pass"


def test_a_background_programs_wrong_output_fails_the_check_phase_and_still_unloads(tmp_path, staged):
    toml = ('[[check]]\nname = "reader"\nkind = "program"\nsource = "tests/reader.c"\nbackground = true\n'
            "expect_stdout = 'reader got: ping'\n")
    guest = FakeGuest([STARTED, Rule(r"kill -TERM", stdout="killed 137\n"),
                       Rule(r"^cat /tmp/kh-bg/\d+/out", stdout="reader waiting\n")],
                      kernel_log=BOOT_LOG, release=RELEASE)
    r = _run(_copy(tmp_path, toml), guest)
    assert r.status == "fail" and r.summary.startswith("check: 1 of 1 check(s) failed: reader: background program "
                                                       "still running after the last check: ignored SIGTERM")
    assert "does not match 'reader got: ping'" in r.summary
    assert r.phase("unload").status == "pass" and any(c.startswith("rmmod") for c in guest.commands)


def test_a_program_that_does_not_compile_fails_the_build_and_boots_nothing(tmp_path, staged):
    d = _copy(tmp_path, 'programs = ["broken.c"]\n')
    (d / "broken.c").write_text("int main(void)\n{\n\treturn kharness_undeclared;\n}\n")
    guest = FakeGuest(kernel_log=BOOT_LOG, release=RELEASE)
    r = _run(d, guest)
    assert (r.status, r.exit_code) == ("fail", 1)
    assert r.summary.startswith("build: program broken did not compile: broken.c:3:16: error: "
                                "'kharness_undeclared' undeclared"), r.summary
    assert [str(p.status) for p in r.phases] == ["fail"] + ["skipped"] * 5 and guest.commands == []
    assert "kharness_undeclared" in r.phase("build").log and "-static" in r.phase("build").log
    assert r.build.diagnostics[0]["severity"] == "error" and r.build.diagnostics[0]["file"].endswith("broken.c")


def test_a_missing_source_is_a_usage_error_before_any_build(tmp_path, staged, monkeypatch):
    d = _copy(tmp_path, '[[check]]\nkind = "program"\nsource = "other/userspace_ioctl.c"\n')
    monkeypatch.setattr(build, "build_module", lambda *a: pytest.fail("built"))
    r = _run(d, FakeGuest(kernel_log=BOOT_LOG, release=RELEASE))
    assert (r.status, r.exit_code, r.error["kind"]) == ("error", 2, "usage")
    assert r.error["message"] == f"{d}/kharness.toml: check #1: 'source': other/userspace_ioctl.c does not exist " \
                                 f"(paths are relative to {d})"


def test_over_a_slow_channel_programs_are_baked_into_an_image_of_their_own(tmp_path, staged, monkeypatch):
    """The Pis' mini-UART would take seconds per run for a static program: it goes into an image
    (cached by content, with its own snapshot) instead, executable under /kh/bin."""
    from kharness.image.cpio import read_newc

    monkeypatch.setattr(runner_image, "RIDE_ALONG_SECONDS", 0.0)
    (tmp_path / "base.cpio.gz").write_bytes(b"\x1f\x8b base image\0\0\0")
    guest = FakeGuest([STARTED, UNBLOCK, TEST, Rule(r"kill -TERM", stdout="exited 0\n"), OUTPUT],
                      kernel_log=BOOT_LOG, release=RELEASE)
    r = _run(_copy(tmp_path), guest)
    assert r.status == "pass", r.summary
    assert sorted(staged.payload) == ["progbuf.ko"]
    assert "images-with" in r.image.base
    data = Path(r.image.base).read_bytes()
    entries = {n: m for n, m, _ in read_newc(data[data.index(b"070701"):])}
    assert stat.S_IMODE(entries["kh/bin/test"]) == 0o755 and stat.S_IMODE(entries["kh/bin/reader"]) == 0o755
