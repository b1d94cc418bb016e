"""Real drivers' runs through the fake guest (kharness/testing/fake_guest.py): the kernel's own
modules loaded first and unloaded last, soft dependencies that fail, loads that must fail
([load] expect_errno), [module] skip, unknown symbols explained, a dkms.conf that excludes the
cell (skipped), a kernel module the target lacks (exit 2 before boot).

The build and the image are stand-ins (as in test_runner_fake_guest.py) and the kernel's module
tree is a small one written here; from the boot on it is the real runner. The same behaviours on
a real kernel: tests/integration/test_real_drivers.py.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from kharness import plan, runner
from kharness.agent_client import HealthLook, format_health
from kharness.build.dkms import BuildExcluded
from kharness.build.kbuild import BuildOutcome, BuiltModule
from kharness.kernels.modtree import ModuleTree
from kharness.kernels.resolve import KernelSpec
from kharness.runner import image as runner_image
from kharness.vm import snapshot
from kharness.runner import boot, build, deps, prepare
from kharness.testing.fake_guest import FakeGuest, Rule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "modules"
RELEASE = "6.1.0-50-amd64"
BOOT_LOG = "<5>[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\n"
SCHEMA = json.loads((Path(runner.__file__).parents[1] / "result" / "result.schema.json").read_text())

# A kernel's module tree as depmod describes it: videodev needs mc; i2c-stub needs nothing;
# videodev has a soft pre-dependency (fakesoft) that the tests make fail.
TREE_PATHS = {"mc": "kernel/drivers/media/mc/mc.ko", "videodev": "kernel/drivers/media/v4l2-core/videodev.ko",
              "i2c_stub": "kernel/drivers/i2c/i2c-stub.ko", "fakesoft": "kernel/drivers/misc/fakesoft.ko"}


@pytest.fixture
def drivers(tmp_path, monkeypatch):
    """Stand-ins for the build (modules with the modinfo ``stub.modinfo`` gives; ``stub.excluded``
    makes the dkms.conf exclude the cell), the image, and the kernel's module tree (``stub.tree``,
    read only when asked: ``stub.opened`` counts)."""
    stub = SimpleNamespace(modinfo={}, excluded=None, opened=0, initrd={}, base=None)
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    spec = KernelSpec(RELEASE, "6.1", "bookworm", "6.1.176-1", (), (), "gcc-12")
    monkeypatch.setattr(prepare, "qemu_binary", lambda profile: "qemu-system-x86_64")
    monkeypatch.setattr(plan.GuestPlan, "resolve", lambda self: (spec, None))
    monkeypatch.setattr(build, "ensure_headers", lambda spec: SimpleNamespace(build_dir=tmp_path / "headers"))
    monkeypatch.setattr(build, "pick_toolchain", lambda profile, spec: SimpleNamespace(
        version="gcc 12.2.0", note="", sysroot=None))

    def build_module(build_plan, headers, tc):
        if stub.excluded:
            raise BuildExcluded(stub.excluded)
        mods = []
        for m in build_plan.modules:
            ko = tmp_path / f"{m.name}.ko"
            ko.write_bytes(b"\x7fELF fake module " + m.name.encode())
            mods.append(BuiltModule(m.name, ko, f"{RELEASE} SMP preempt mod_unload",
                                    stub.modinfo.get(m.name, {"license": ["GPL"]})))
        return BuildOutcome(ok=True, modules=mods, diagnostics=[], log="", duration=0.0, cached=False,
                            command=["make"], build_dir=tmp_path, built_by="dkms" if stub.excluded is None else "")

    monkeypatch.setattr(build, "build_module", build_module)
    monkeypatch.setattr(plan.GuestPlan, "image", lambda self, spec, built: (
        SimpleNamespace(kernel=tmp_path / "vmlinuz"),
        SimpleNamespace(path=tmp_path / "base.cpio.gz", key="0123", busybox={"name": "busybox-static"}), None))

    (tmp_path / "base.cpio.gz").write_bytes(b"\x1f\x8b base image\0\0\0")

    def initrd(base, payload, dest):
        stub.initrd, stub.base = dict(payload), base   # a cold boot's: the base image and the run's payload
        return dest

    monkeypatch.setattr(boot, "write_run_initrd", initrd)
    root = tmp_path / "tree"
    for name, rel in TREE_PATHS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"\x7fELF kernel module " + name.encode())
    stub.tree = ModuleTree(label="6.1 for x86_64", root=root, paths=TREE_PATHS,
                           deps={"videodev": ("mc",), "mc": (), "i2c_stub": (), "fakesoft": ()},
                           softdeps={"videodev": (("fakesoft",), ())},
                           extra_exports={"video_register_device": "videodev"})

    def open_tree(spec, headers, built_kernel, target):
        stub.opened += 1
        return stub.tree

    monkeypatch.setattr(deps, "open_tree", open_tree)
    return stub


def module_dir(tmp_path: Path, toml: str, *names: str) -> Path:
    d = tmp_path / "src" / names[0]
    d.mkdir(parents=True)
    for n in names:
        (d / f"{n}.c").write_text(f"// {n}\n#include <linux/module.h>\nMODULE_LICENSE(\"GPL\");\n")
    (d / "kharness.toml").write_text(textwrap.dedent(toml))
    return d


def _run(d: Path, guest: FakeGuest, cold: bool = True):
    r = runner.Run(runner.RunOptions(module_dir=d, cold=cold, accel="tcg"), guest_factory=lambda *a: guest).execute()
    runner.wait_for_teardown()
    _validate(r)
    return r


def _validate(r) -> None:
    import jsonschema

    jsonschema.validate(r.to_dict(), SCHEMA)


def _guest(*rules: Rule) -> FakeGuest:
    return FakeGuest(list(rules), kernel_log=BOOT_LOG, release=RELEASE)


def _module_commands(guest: FakeGuest) -> list[str]:
    """Every insmod and rmmod, in order (the chain's run as one guest command, joined by &&)."""
    return [part for c in guest.commands if c.startswith(("insmod", "rmmod")) for part in c.split(" && ")]


V4L2_DEP = {"license": ["GPL"], "depends": ["videodev"]}


# --- the kernel's own modules: loaded first, unloaded last, in reverse --------------------------

@pytest.fixture(params=["virtio console", "mini-UART"])
def channel(request, monkeypatch):
    """A target whose command channel is fast (the chain rides along with every run) or slow (the
    chain is baked into an image with its own snapshot): kharness.runner.image.rides_along."""
    if request.param == "mini-UART":
        monkeypatch.setattr(runner_image, "RIDE_ALONG_SECONDS", 0.0)
    return request.param


CHAIN_FILES = {"kh/i2c-stub.ko": b"\x7fELF kernel module i2c_stub", "kh/fakesoft.ko": b"\x7fELF kernel module fakesoft",
               "kh/mc.ko": b"\x7fELF kernel module mc", "kh/videodev.ko": b"\x7fELF kernel module videodev"}


def test_the_chain_is_loaded_in_order_before_the_module_and_unloaded_in_reverse(tmp_path, drivers, channel):
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, '[module]\nrequires = ["i2c-stub chip_addr=0x48"]\n', "v4l2dep")
    guest = _guest()
    r = _run(d, guest)
    assert r.status == "pass", r.summary
    assert _module_commands(guest) == [
        "insmod /kh/i2c-stub.ko chip_addr=0x48",    # [module] requires, with its parameters
        "insmod /kh/fakesoft.ko",                   # videodev's soft pre-dependency
        "insmod /kh/mc.ko",                         # what videodev needs, before it
        "insmod /kh/videodev.ko",
        "insmod /kh/v4l2dep.ko",                    # the module under test last
        "rmmod v4l2dep",                            # and first out, then the chain in reverse
        "rmmod videodev", "rmmod mc", "rmmod fakesoft", "rmmod i2c_stub"]
    # The chain and the module under test cost one guest command each way (tens of milliseconds
    # each under TCG).
    assert [c.count("&&") for c in guest.commands if c.startswith(("insmod", "rmmod"))] == [4, 4]
    if channel == "mini-UART":
        # In the image the guest boots (cached by content), as the tree has them; the run's
        # payload is only the module under test.
        assert set(drivers.initrd) == {"v4l2dep.ko"}
        assert _kh_files(drivers.base.path) == CHAIN_FILES
        assert r.image.base == str(drivers.base.path) and "images-with" in r.image.base
    else:
        # With the module under test, as the tree has them; the base image is the plain one.
        assert {f"kh/{n}": d for n, d in drivers.initrd.items() if n != "v4l2dep.ko"} == CHAIN_FILES
        assert r.image.base == str(tmp_path / "base.cpio.gz")
    # The result lists the chain per module.
    chain = {k: [(e["name"], e["wanted_by"], e["soft"], e["status"]) for e in v] for k, v in r.dependencies.items()}
    assert chain == {"v4l2dep": [("i2c_stub", "v4l2dep", False, "loaded"), ("fakesoft", "videodev", True, "loaded"),
                                 ("mc", "videodev", False, "loaded"), ("videodev", "v4l2dep", False, "loaded")]}
    assert r.dependencies["v4l2dep"][0]["params"] == ["chip_addr=0x48"]
    assert r.phase("load").message == "v4l2dep (after the kernel's own i2c_stub, fakesoft, mc, videodev)"


def test_a_module_that_needs_nothing_reads_no_tree(tmp_path, drivers):
    """Zero cost for the common case: no depends, no requires, no tree read, nothing extra."""
    d = module_dir(tmp_path, "", "plain")
    guest = _guest()
    r = _run(d, guest)
    assert r.status == "pass" and drivers.opened == 0
    assert _module_commands(guest) == ["insmod /kh/plain.ko", "rmmod plain"]
    assert "dependencies" not in r.to_dict()


def test_a_restored_guest_has_the_chain_without_a_cold_boot(tmp_path, drivers, monkeypatch, channel):
    """Over a slow channel the chain is in the image the snapshot was saved from (a snapshot per
    chain, by content) and the restored run delivers only the module under test; over a fast one
    the chain rides along with the module and every run restores the base image's snapshot."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    snap_file = tmp_path / "ready.qcow2"
    snap_file.write_bytes(b"vmstate")
    saved_from = []

    def ensure(profile, boot_spec, *a, **kw):
        saved_from.append(boot_spec.initrd)
        return SimpleNamespace(key="x86_64-test", path=snap_file, release=RELEASE, restore_args=lambda copy: [],
                               prepared=format_health(HealthLook(0, BOOT_LOG, frozenset(), {})))

    monkeypatch.setattr(boot.snapshot, "ensure", ensure)
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest()
    r = _run(d, guest, cold=False)
    assert r.status == "pass", r.summary
    assert r.boot_mode == "snapshot" and drivers.initrd == {}            # no cold boot
    again = _guest()
    _run(d, again, cold=False)
    d2 = module_dir(tmp_path, '[module]\nrequires = ["i2c-stub"]\n', "other")
    _run(d2, _guest(), cold=False)
    if channel == "mini-UART":
        assert set(_kh_files(saved_from[0])) == {"kh/fakesoft.ko", "kh/mc.ko", "kh/videodev.ko"}
        assert set(guest.files) == {"/kh/v4l2dep.ko"}                     # delivered: only the module
        # The same chain again: the same image (so the same snapshot); another chain: another one.
        assert saved_from[1] == saved_from[0] and saved_from[2] != saved_from[0]
    else:
        assert saved_from == [tmp_path / "base.cpio.gz"] * 3               # one snapshot for all
        assert {f: d for f, d in guest.files.items() if f != "/kh/v4l2dep.ko"} == {
            f"/{n}": d for n, d in CHAIN_FILES.items() if n != "kh/i2c-stub.ko"}
        assert guest.modes["/kh/videodev.ko"] == 0o644


def test_a_module_that_needs_nothing_boots_the_plain_base_image(tmp_path, drivers):
    """The test above can fail: without a chain the image is the base one, its snapshot shared."""
    r = _run(module_dir(tmp_path, "", "plain"), _guest())
    assert drivers.base.path == tmp_path / "base.cpio.gz" and r.image.base == str(tmp_path / "base.cpio.gz")


def _kh_files(initrd: Path) -> dict[str, bytes]:
    """The files under /kh of the archive appended to the base image (a second, plain cpio)."""
    from kharness.image.cpio import read_newc

    data = Path(initrd).read_bytes()
    start = data.index(b"070701")   # (the stand-in base image is no cpio)
    return {n: d for n, _, d in read_newc(data[start:]) if n.startswith("kh/") and d}


def test_a_soft_dependency_that_fails_to_load_is_not_the_modules_failure(tmp_path, drivers):
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest(Rule(r"^insmod /kh/fakesoft\.ko$", rc=1,
                        stderr="insmod: can't insert '/kh/fakesoft.ko': No such device\n"))
    r = _run(d, guest)
    assert r.status == "pass", r.summary
    status = {e["name"]: e["status"] for e in r.dependencies["v4l2dep"]}
    assert status == {"fakesoft": "failed", "mc": "loaded", "videodev": "loaded"}
    assert "rmmod fakesoft" not in _module_commands(guest)                # not loaded: not unloaded
    assert "a soft dependency of videodev" in r.phase("load").log


def test_a_hard_dependency_that_fails_to_load_fails_the_load(tmp_path, drivers):
    """The test above can fail: the same failure of a module videodev needs is the run's."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest(Rule(r"^insmod /kh/mc\.ko$", rc=1, stderr="insmod: can't insert '/kh/mc.ko': No such device\n"))
    r = _run(d, guest)
    assert r.status == "fail"
    assert r.summary == ("load: kernel module mc, which videodev needs, did not load: "
                         "insmod: can't insert '/kh/mc.ko': No such device")
    assert "insmod /kh/v4l2dep.ko" not in guest.commands
    assert [e["status"] for e in r.dependencies["v4l2dep"]] == ["loaded", "not loaded", "not loaded"]


def test_a_kernel_module_the_target_lacks_is_named_before_boot(tmp_path, drivers):
    d = module_dir(tmp_path, '[module]\nrequires = ["snd-dummy"]\n', "sndreq")
    guest = _guest()
    r = _run(d, guest)
    assert (r.status, r.exit_code, r.error["kind"]) == ("error", 2, "usage")
    assert r.error["message"].startswith("sndreq needs `snd-dummy`, which 6.1 for x86_64 does not ship")
    assert guest.commands == [] and r.phase("boot").status == "skipped"  # nothing booted


def test_kernel_modules_already_in_the_guest_are_left_as_they_are(tmp_path, drivers):
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest()
    guest.modules.append("mc")                                            # the guest had it
    r = _run(d, guest)
    assert r.status == "pass", r.summary
    assert {e["name"]: e["status"] for e in r.dependencies["v4l2dep"]}["mc"] == "already loaded"
    assert "rmmod mc" not in _module_commands(guest) and "mc" in guest.modules


# --- unknown symbols ------------------------------------------------------------------------------

UNKNOWN = ("<4>[    5.1] v4l2dep: Unknown symbol video_register_device (err -2)\n"
           "<4>[    5.1] v4l2dep: Unknown symbol no_such_export_anywhere (err -2)\n")


def test_unknown_symbols_are_explained_in_the_verdict_and_the_result(tmp_path, drivers):
    d = module_dir(tmp_path, "", "v4l2dep")      # no depends in its modinfo: videodev is not loaded
    guest = _guest(Rule(r"^insmod /kh/v4l2dep\.ko$", rc=1, kernel_log=UNKNOWN, stderr="insmod: can't insert "
                        "'/kh/v4l2dep.ko': unknown symbol in module, or unknown parameter\n"))
    r = _run(d, guest)
    assert r.status == "fail"
    assert r.summary == ("load: insmod v4l2dep failed (exit 1): insmod: can't insert '/kh/v4l2dep.ko': unknown "
                         "symbol in module, or unknown parameter; unresolved symbols: `video_register_device` is "
                         "exported by videodev, which was not loaded; nothing in 6.1 for x86_64 exports "
                         "`no_such_export_anywhere` (a symbol of another kernel version, or one this kernel "
                         "does not export)")
    kinds = [(s["symbol"], s["kind"], s["exporter"]) for s in r.unknown_symbols["symbols"]]
    assert kinds == [("video_register_device", "exporter-not-loaded", "videodev"),
                     ("no_such_export_anywhere", "not-exported", None)]


def test_a_load_failure_without_symbol_lines_is_not_explained(tmp_path, drivers):
    """The test above can fail: without the kernel's lines there is nothing to explain."""
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest(Rule(r"^insmod /kh/v4l2dep\.ko$", rc=1, stderr="insmod: can't insert '/kh/v4l2dep.ko': "
                                                                  "No such device\n"))
    r = _run(d, guest)
    assert r.summary == "load: insmod v4l2dep failed (exit 1): insmod: can't insert '/kh/v4l2dep.ko': No such device"
    assert r.unknown_symbols is None and drivers.opened == 0


# --- loads that must fail, and modules left out -----------------------------------------------------

def _enodev(name: str, errno_text: str = "No such device", **kw) -> Rule:
    return Rule(rf"^insmod /kh/{name}\.ko$", rc=1, stderr=f"insmod: can't insert '/kh/{name}.ko': {errno_text}\n", **kw)


def test_expected_load_failures_and_skip_pass(drivers):
    guest = _guest(_enodev("kdatasize", kernel_log="<6>[ 5.0] kdatasize: arch x86_64: char 1 short 2"),
                   _enodev("kdataalign"))
    r = _run(FIXTURES / "expected_fail", guest)
    assert r.status == "pass", r.summary
    # silly is neither delivered nor loaded; the two that must fail are not unloaded.
    assert _module_commands(guest) == ["insmod /kh/jiq.ko", "insmod /kh/kdataalign.ko", "insmod /kh/kdatasize.ko",
                                       "rmmod jiq"]
    assert "silly.ko" not in drivers.initrd
    assert {m: (e["expected"], e["got"], e["as_expected"]) for m, e in r.expected_load_failures.items()} == {
        "kdataalign": ("ENODEV", "ENODEV", True), "kdatasize": ("ENODEV", "ENODEV", True)}
    assert r.phase("load").message == "jiq, kdataalign failed with ENODEV as expected, kdatasize failed with " \
                                      "ENODEV as expected"


def test_an_expected_failure_with_another_errno_fails_the_load(drivers):
    guest = _guest(_enodev("kdatasize"), _enodev("kdataalign", "Invalid argument"))
    r = _run(FIXTURES / "expected_fail", guest)
    assert r.status == "fail"
    assert r.summary == ("load: insmod kdataalign failed with EINVAL, expected ENODEV (insmod: can't insert "
                         "'/kh/kdataalign.ko': Invalid argument)")
    assert r.expected_load_failures["kdataalign"] == {
        "expected": "ENODEV", "got": "EINVAL", "as_expected": False,
        "output": "insmod: can't insert '/kh/kdataalign.ko': Invalid argument"}


def test_a_load_that_must_fail_but_succeeds_fails_the_run(drivers):
    guest = _guest(_enodev("kdatasize"))      # kdataalign loads
    r = _run(FIXTURES / "expected_fail", guest)
    assert r.summary == "load: insmod kdataalign succeeded; [load] expect_errno says it must fail with ENODEV"
    assert r.expected_load_failures["kdataalign"]["got"] is None


def test_an_oops_during_a_load_that_must_fail_fails_the_run(drivers):
    oops = "<1>[ 5.2] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
    guest = _guest(_enodev("kdatasize", kernel_log=oops, taint=128), _enodev("kdataalign"))
    r = _run(FIXTURES / "expected_fail", guest)
    assert r.status == "fail" and r.summary.startswith("load: kernel reported null_deref")


# --- a cell the module's dkms.conf excludes ----------------------------------------------------

def test_a_build_the_dkms_conf_excludes_is_skipped_not_failed(tmp_path, drivers):
    drivers.excluded = "dkms.conf builds only for architecture '^(x86_64|aarch64)$', not ppc64"
    d = module_dir(tmp_path, "", "excl")
    guest = _guest()
    r = _run(d, guest)
    assert (r.status, r.exit_code) == ("skipped", 0)
    assert r.summary == "skipped: dkms.conf builds only for architecture '^(x86_64|aarch64)$', not ppc64"
    assert [(p.name, p.status) for p in r.phases][:2] == [("build", "skipped"), ("image", "skipped")]
    assert r.phase("build").message.startswith("dkms.conf builds only")
    assert guest.commands == [] and r.error is None


def test_a_skipped_run_prints_a_clear_line_and_the_session_says_skipped(tmp_path, drivers, monkeypatch):
    from rich.console import Console

    from kharness import session as session_mod
    from kharness.result.writers import print_summary

    drivers.excluded = "dkms.conf builds only for kernel '^5\\.', not 6.1.0-50-amd64"
    d = module_dir(tmp_path, "", "excl")
    r = _run(d, _guest())
    console = Console(record=True, width=200)
    print_summary(r, console)
    text = console.export_text()
    assert text.startswith("SKIPPED")
    assert "skipped: dkms.conf builds only for kernel '^5\\.', not 6.1.0-50-amd64 (not a failure: exit 0)" in text
    # A Session (and so the pytest plugin, which skips the test) gets RunSkipped, a RunFailed.
    monkeypatch.setattr(session_mod, "Run", lambda opts: runner.Run(opts, guest_factory=lambda *a: _guest()))
    with pytest.raises(session_mod.RunSkipped) as e:
        with session_mod.session(d):
            pass
    assert isinstance(e.value, session_mod.RunFailed) and e.value.result.status == "skipped"


def test_the_build_record_says_which_way_it_was_built(tmp_path, drivers):
    d = module_dir(tmp_path, "", "plain")
    r = _run(d, _guest())
    assert r.build.built_by == "dkms" and r.phase("build").message.endswith("(built by its dkms.conf)")


def test_a_kernel_module_still_held_after_the_unload_fails_it(tmp_path, drivers):
    """A module under test that leaves a reference on videodev: its rmmod is refused, and says so."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    guest = _guest(Rule(r"^rmmod videodev$", rc=1,
                        stderr="rmmod: can't unload module 'videodev': Resource temporarily unavailable\n"))
    r = _run(module_dir(tmp_path, "", "v4l2dep"), guest)
    assert r.status == "fail"
    assert r.summary == ("unload: rmmod videodev (a kernel module loaded for the module under test) failed: "
                         "rmmod: can't unload module 'videodev': Resource temporarily unavailable")
    assert _module_commands(guest)[-3:] == ["rmmod videodev", "rmmod mc", "rmmod fakesoft"]   # one command
    assert "rmmod mc" not in r.phase("unload").log          # which stopped at the refusal (&&)


def test_a_module_whose_insmod_fails_after_its_chain_is_explained_as_alone(tmp_path, drivers):
    """The module's insmod runs in the chain's guest command: its failure is still the module's
    own, explained from the kernel's lines, with the chain recorded as loaded."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    guest = _guest(Rule(r"^insmod /kh/v4l2dep\.ko$", rc=1, kernel_log=UNKNOWN, stderr="insmod: can't insert "
                        "'/kh/v4l2dep.ko': unknown symbol in module, or unknown parameter\n"))
    r = _run(module_dir(tmp_path, "", "v4l2dep"), guest)
    assert r.status == "fail"
    assert r.summary.startswith("load: insmod v4l2dep failed (exit 1): insmod: can't insert '/kh/v4l2dep.ko'")
    assert "`no_such_export_anywhere`" in r.summary
    assert [c.count("&&") for c in guest.commands if c.startswith("insmod")] == [3]   # one command
    assert {e["name"]: e["status"] for e in r.dependencies["v4l2dep"]} == {
        "fakesoft": "loaded", "mc": "loaded", "videodev": "loaded"}


def test_a_module_whose_rmmod_fails_before_its_chain_keeps_the_chain(tmp_path, drivers):
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    guest = _guest(Rule(r"^rmmod v4l2dep$", rc=1,
                        stderr="rmmod: can't unload module 'v4l2dep': Resource temporarily unavailable\n"))
    r = _run(module_dir(tmp_path, "", "v4l2dep"), guest)
    assert r.status == "fail"
    assert r.summary == ("unload: rmmod v4l2dep failed (exit 1): rmmod: can't unload module 'v4l2dep': "
                         "Resource temporarily unavailable")
    assert "rmmod videodev" not in r.phase("unload").log    # the chain's rmmods did not run (&&)


def test_the_chain_is_sent_once_then_restored_with_the_guest(tmp_path, drivers, monkeypatch):
    """Over a fast channel the first run sends the chain alone, saves the guest with it (before
    anything of the module under test reaches the guest) and then sends the module; the next run
    restores that guest and sends only the module."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    snap_file = tmp_path / "ready.qcow2"
    snap_file.write_bytes(b"vmstate")
    base = snapshot.Snapshot(snap_file, "x86_64-test", RELEASE, 0.1,
                             format_health(HealthLook(0, BOOT_LOG, frozenset(), {})))
    monkeypatch.setattr(boot.snapshot, "ensure", lambda *a, **kw: base)
    derived: dict = {}
    saves = []

    def save_derived(snap, key, sock, qcow):
        saves.append((snap.key, key, guest.files.copy()))
        derived[key] = snapshot.Snapshot(snap_file, f"{snap.key}+{key}", RELEASE, 0.1, snap.prepared)
        return derived[key]

    monkeypatch.setattr(boot.snapshot, "load_derived", lambda snap, key: derived.get(key))
    monkeypatch.setattr(boot.snapshot, "save_derived", save_derived)
    d = module_dir(tmp_path, "", "v4l2dep")
    guest = _guest()
    r = _run(d, guest, cold=False)
    assert r.status == "pass", r.summary
    (_, key, files_at_save), = saves
    assert set(files_at_save) == {"/kh/fakesoft.ko", "/kh/mc.ko", "/kh/videodev.ko"}   # not the module yet
    assert "kh-agent health" not in guest.commands[0] and "kh-agent restored" in guest.commands[0]
    assert "kh-agent restored" not in guest.commands[1] and guest.commands[1].endswith("kh-agent health")
    assert "saved with the run's unchanging files" in r.boot_mode_note
    guest = _guest()
    r = _run(d, guest, cold=False)
    assert r.status == "pass", r.summary
    assert len(saves) == 1
    assert set(guest.files) == {"/kh/v4l2dep.ko"}                          # only the module crossed
    assert r.boot_mode_note == f"restored x86_64-test+{key} (with the run's unchanging files)"


# --- kh-agent's insmod and rmmod (the tools of a guest driven over SSH) -----------------------------

@pytest.fixture
def agent_tools(monkeypatch):
    """The run loads and unloads with kh-agent's insmod/rmmod, as ssh_boot sets it for a Debian
    guest or a board (the fake guest answers them as busybox's, with busybox's messages)."""
    from kharness.runner import context

    monkeypatch.setattr(context, "PLAIN_MODULE_TOOLS", context.AGENT_MODULE_TOOLS)


def test_kh_agent_tools_load_the_chain_and_the_module_and_unload_them(tmp_path, drivers, agent_tools):
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, '[module]\nrequires = ["i2c-stub chip_addr=0x48"]\n', "v4l2dep")
    guest = _guest()
    r = _run(d, guest)
    assert r.status == "pass", r.summary
    parts = [p for c in guest.commands if c.startswith("kh-agent insmod") or c.startswith("kh-agent rmmod")
             for p in c.split(" && ")]
    assert parts == ["kh-agent insmod /kh/i2c-stub.ko chip_addr=0x48", "kh-agent insmod /kh/fakesoft.ko",
                     "kh-agent insmod /kh/mc.ko", "kh-agent insmod /kh/videodev.ko", "kh-agent insmod /kh/v4l2dep.ko",
                     "kh-agent rmmod v4l2dep", "kh-agent rmmod videodev", "kh-agent rmmod mc",
                     "kh-agent rmmod fakesoft", "kh-agent rmmod i2c_stub"]
    assert not _module_commands(guest)                                    # no plain insmod/rmmod at all


def test_kh_agent_tools_blame_the_step_that_failed(tmp_path, drivers, agent_tools):
    """run_batch finds the failed step by the file (insmod) or 'name' (rmmod) the message names,
    and the verdict names the tool, not kh-agent."""
    drivers.modinfo["v4l2dep"] = V4L2_DEP
    d = module_dir(tmp_path, "", "v4l2dep")
    r = _run(d, _guest(Rule(r"^kh-agent insmod /kh/mc\.ko$", rc=1,
                            stderr="insmod: can't insert '/kh/mc.ko': No such device\n")))
    assert r.summary == ("load: kernel module mc, which videodev needs, did not load: "
                         "insmod: can't insert '/kh/mc.ko': No such device")
    assert [e["status"] for e in r.dependencies["v4l2dep"]] == ["loaded", "not loaded", "not loaded"]
    r = _run(d, _guest(Rule(r"^kh-agent insmod /kh/v4l2dep\.ko$", rc=1, kernel_log=UNKNOWN,
                            stderr="insmod: can't insert '/kh/v4l2dep.ko': unknown symbol in module, or "
                                   "unknown parameter\n")))
    assert r.summary.startswith("load: insmod v4l2dep failed (exit 1): insmod: can't insert '/kh/v4l2dep.ko'")
    assert {e["status"] for e in r.dependencies["v4l2dep"]} == {"loaded"}
    guest = _guest(Rule(r"^kh-agent rmmod videodev$", rc=1,
                        stderr="rmmod: can't unload module 'videodev': Resource temporarily unavailable\n"))
    r = _run(d, guest)
    assert r.summary == ("unload: rmmod videodev (a kernel module loaded for the module under test) failed: "
                         "rmmod: can't unload module 'videodev': Resource temporarily unavailable")
    guest = _guest(Rule(r"^kh-agent rmmod v4l2dep$", rc=1,
                        stderr="rmmod: can't unload module 'v4l2dep': Resource temporarily unavailable\n"))
    r = _run(d, guest)
    assert r.summary == ("unload: rmmod v4l2dep failed (exit 1): rmmod: can't unload module 'v4l2dep': "
                         "Resource temporarily unavailable")
    # a module without a chain: its own guest command each way
    plain = module_dir(tmp_path, "", "plain")
    r = _run(plain, _guest(Rule(r"^kh-agent insmod /kh/plain\.ko$", rc=1,
                                stderr="insmod: can't insert '/kh/plain.ko': No such device\n")))
    assert r.summary == "load: insmod plain failed (exit 1): insmod: can't insert '/kh/plain.ko': No such device"
    r = _run(plain, _guest(Rule(r"^kh-agent rmmod plain$", rc=1,
                                stderr="rmmod: can't unload module 'plain': Resource temporarily unavailable\n")))
    assert r.summary == ("unload: rmmod plain failed (exit 1): rmmod: can't unload module 'plain': "
                         "Resource temporarily unavailable")


def test_kh_agent_tools_judge_expected_load_failures(drivers, agent_tools):
    def enodev(name, text="No such device"):
        return Rule(rf"^kh-agent insmod /kh/{name}\.ko$", rc=1, stderr=f"insmod: can't insert '/kh/{name}.ko': {text}\n")

    r = _run(FIXTURES / "expected_fail", _guest(enodev("kdatasize"), enodev("kdataalign")))
    assert r.status == "pass", r.summary
    r = _run(FIXTURES / "expected_fail", _guest(enodev("kdatasize"), enodev("kdataalign", "invalid module format")))
    assert r.summary == ("load: insmod kdataalign failed with ENOEXEC, expected ENODEV (insmod: can't insert "
                         "'/kh/kdataalign.ko': invalid module format)")
