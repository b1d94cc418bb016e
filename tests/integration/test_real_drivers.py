"""Real drivers as they come (issue #15), end to end through `kharness run`: a dkms.conf (and a
cell it excludes, skipped), an LDD3-style Makefile that passes a variable from its default target,
a netfilter module whose dkms.conf runs ./configure, a directory whose modules refuse to load by
design ([load] expect_errno, [module] skip), and [module] requires loading the kernel's own
snd-dummy with what it needs (and the by-name refusal on a target whose kernel does not ship it).

The same behaviours judged through the fake guest: tests/unit/test_runner_real_drivers.py."""

from __future__ import annotations

import textwrap

import pytest

from conftest import FIXTURES, require_series


def _passed(o) -> None:
    assert o.rc == 0, (o.stdout, o.stderr, o.result and o.result["summary"])
    assert o.result["status"] == "pass"
    assert [p["status"] for p in o.result["phases"]] == ["pass"] * 6
    assert not o.kinds()


@pytest.mark.parametrize("fixture,built_by", [
    ("dkms_mod", "dkms"),                            # PRE_BUILD, MAKE, BUILT_MODULE_LOCATION
    ("ldd3_style/misc-modules", "own-makefile"),     # LDDINC passed from the default target
    ("netfilter_configure", "dkms"),                 # PRE_BUILD runs ./configure; the plugin is not kernel code
])
def test_a_module_builds_as_its_own_files_ask_and_passes(kharness, fixture, built_by):
    require_series("x86_64", "6.1")
    o = kharness("run", str(FIXTURES / fixture))
    _passed(o)
    assert o.result["build"]["built_by"] == built_by
    build = o.result["phases"][0]["message"]
    assert build.endswith({"dkms": "(built by its dkms.conf)",
                           "own-makefile": "(built by its Makefile's default target)"}[built_by]), build
    if built_by == "dkms":
        assert o.result["build"]["dkms"]["pre_build"]


def test_a_cell_the_dkms_conf_excludes_is_skipped(kharness):
    """dkms_mod's BUILD_EXCLUSIVE_ARCH leaves out big-endian ppc64 (whose kernel kharness builds
    itself): skipped with the reason, exit 0, nothing booted."""
    require_series("ppc64", "6.1")
    o = kharness("run", str(FIXTURES / "dkms_mod"), "--target", "ppc64", "--kernel", "6.1")
    assert o.rc == 0, (o.stdout, o.stderr)
    assert o.result["status"] == "skipped"
    assert o.result["summary"] == ("skipped: dkms.conf builds only for architecture "
                                   "'^(x86_64|aarch64|arm.*|ppc64le)$', not ppc64")
    assert [p["status"] for p in o.result["phases"]] == ["skipped"] * 6
    assert "SKIPPED" in o.stdout and "not a failure: exit 0" in o.stdout
    assert "error" not in o.stderr


def test_loads_that_must_fail_and_a_module_left_out(kharness):
    """expected_fail: kdatasize and kdataalign return -ENODEV by design, silly is skipped; the run
    passes with jiq loaded and unloaded, and says which loads failed as expected."""
    require_series("x86_64", "6.1")
    o = kharness("run", str(FIXTURES / "expected_fail"))
    _passed(o)
    assert o.result["expected_load_failures"] == {
        m: {"expected": "ENODEV", "got": "ENODEV", "as_expected": True,
            "output": f"insmod: can't insert '/kh/{m}.ko': No such device"} for m in ("kdataalign", "kdatasize")}
    load = o.result["phases"][3]
    assert "silly" not in load["log"] and "kdatasize: arch x86_64" in o.result["dmesg"]["load"]
    assert o.result["phases"][5]["log"].strip() == "$ rmmod jiq"


def _sndreq(tmp_path):
    d = tmp_path / "sndreq"
    d.mkdir()
    (d / "sndreq.c").write_text(textwrap.dedent("""\
        // SPDX-License-Identifier: GPL-2.0
        #include <linux/module.h>
        #include <linux/init.h>

        static int __init sndreq_init(void) { pr_info("sndreq: loaded after snd-dummy\\n"); return 0; }
        static void __exit sndreq_exit(void) { }
        module_init(sndreq_init);
        module_exit(sndreq_exit);
        MODULE_LICENSE("GPL");
        """))
    (d / "kharness.toml").write_text(textwrap.dedent("""\
        [module]
        requires = ["snd-dummy pcm_devs=2"]

        [[check]]
        name = "the dummy card is there"
        run = "cat /proc/asound/cards"
        expect_stdout = "Dummy"
        """))
    return d


def test_requires_loads_snd_dummy_and_what_it_needs(kharness, tmp_path):
    require_series("x86_64", "6.1")
    o = kharness("run", str(_sndreq(tmp_path)))
    _passed(o)
    chain = o.result["dependencies"]["sndreq"]
    assert [d["name"] for d in chain] == ["soundcore", "snd", "snd_timer", "snd_pcm", "snd_dummy"]
    assert chain[-1]["params"] == ["pcm_devs=2"] and all(d["status"] == "loaded" for d in chain)
    unload = o.result["phases"][5]["log"]
    assert [ln for ln in unload.splitlines() if ln.startswith("$ rmmod")] == [
        "$ rmmod sndreq", "$ rmmod snd_dummy", "$ rmmod snd_pcm", "$ rmmod snd_timer", "$ rmmod snd",
        "$ rmmod soundcore"]


def test_requires_on_a_target_whose_kernel_lacks_it_is_named_before_boot(kharness, tmp_path):
    """The test above can fail this way: arm64's 6.1 does not ship snd-dummy (its .config has it
    off), which is said in one line, exit 2, before anything boots."""
    require_series("arm64", "6.1")
    o = kharness("run", str(_sndreq(tmp_path)), "--target", "arm64", "--kernel", "6.1")
    assert o.rc == 2, (o.stdout, o.stderr)
    errors = [ln for ln in o.stderr.splitlines() if ln.startswith("kharness: error:")]   # (beside progress lines)
    assert len(errors) == 1 and errors[0].startswith("kharness: error: sndreq needs `snd-dummy`, which 6.1 for "
                                                     "arm64 does not ship"), o.stderr
    assert "booting" not in o.stderr and "restoring" not in o.stderr
    assert o.result["error"]["kind"] == "usage"
    assert [p["status"] for p in o.result["phases"]][2:] == ["skipped"] * 4
