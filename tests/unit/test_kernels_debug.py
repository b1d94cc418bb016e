"""Debug kernels: choosing checkers, their config fragments, and kmemleak's attribution."""

from __future__ import annotations

import dataclasses

import pytest

from kharness.errors import UsageError
from kharness.kernels import debug
from kharness.targets import get_target

LEAKS = """\
unreferenced object 0xffff888004a1c380 (size 64):
  comm "insmod", pid 80, jiffies 4294895102 (age 7.620s)
  hex dump (first 32 bytes):
    6e 65 76 65 72 20 66 72 65 65 64 00 00 00 00 00  never freed.....
  backtrace:
    [<00000000f3d9a2c1>] kmalloc_trace+0x26/0x90
    [<00000000a1b2c3d4>] 0xffffffffc020301d
    [<000000001f2e3d4c>] do_one_initcall+0x8e/0x2f0
    [<000000005a6b7c8d>] do_init_module+0x1b1/0x660
unreferenced object 0xffff888003d2b000 (size 1024):
  comm "swapper/0", pid 1, jiffies 4294892000 (age 38.100s)
  backtrace:
    [<00000000aaaaaaaa>] __kmalloc+0x4e/0x90
    [<00000000bbbbbbbb>] acpi_os_allocate_zeroed+0x1c/0x30
"""


def test_checkers_parse_in_canonical_order():
    assert debug.parse_checkers(None) == ()
    assert debug.parse_checkers("ubsan,kasan") == ("kasan", "ubsan")
    assert debug.parse_checkers("all") == debug.ALL == ("kasan", "kmemleak", "lockdep", "ubsan")
    with pytest.raises(UsageError, match="unknown debug checker.*kcsan"):
        debug.parse_checkers("kasan,kcsan")
    with pytest.raises(UsageError, match="needs a list"):
        debug.parse_checkers(",")


def test_debug_kernel_names():
    assert debug.split_kernel("6.1-debug") == ("6.1", True)
    assert debug.split_kernel("6.1") == ("6.1", False)
    assert debug.split_kernel("6.1.0-50-amd64") == ("6.1.0-50-amd64", False)
    assert debug.split_kernel(None) == (None, False)


def test_fragments_exist_for_every_checker_and_boards_without_one_are_refused():
    frags = debug.debug_fragments(get_target("x86_64"), debug.ALL)
    assert [f.stem for f in frags] == list(debug.ALL)
    assert all(f.is_file() and "CONFIG_" in f.read_text() for f in frags)
    with pytest.raises(UsageError, match="rpi3"):
        debug.debug_fragments(get_target("rpi3"), ("kasan",))
    with pytest.raises(UsageError, match="cannot build a debug kernel for ppc64"):
        debug.debug_fragments(get_target("ppc64"), ("lockdep",))     # a fragment, but no checkers tried
    some = dataclasses.replace(get_target("arm64"), debug_checkers=("lockdep",))
    with pytest.raises(UsageError, match="kasan is not available on arm64"):
        debug.debug_fragments(some, ("kasan", "lockdep"))
    assert debug.debug_fragments(get_target("x86_64"), ()) == []


def test_kmemleak_records_are_attributed_to_the_module_by_their_stack():
    mm = debug.ModuleMap("debug_leak", {".init.text": 0xFFFFFFFFC0203000, ".text": 0xFFFFFFFFC0201000},
                         {".init.text": 0x60, ".text": 0x40},
                         {".init.text": [(0x0, 0x60, "debug_leak_init")], ".text": [(0x0, 0x20, "debug_leak_exit")]})
    text = debug.symbolize_report(LEAKS, [mm])
    assert "debug_leak_init+0x1d/0x60 [debug_leak]" in text
    assert "0xffff888004a1c380" in text            # object addresses are left alone
    mine, others = debug.attribute_leaks(text, ["debug_leak"])
    assert len(mine) == 1 and "never freed" in mine[0]
    assert len(others) == 1 and "acpi_os_allocate_zeroed" in others[0]
    # Without a map the raw address stays, and nothing is blamed on the module.
    assert debug.attribute_leaks(LEAKS, ["debug_leak"])[0] == []


def test_an_address_outside_every_section_is_not_symbolized():
    mm = debug.ModuleMap("m", {".text": 0x1000}, {".text": 0x10}, {".text": [(0, 0x10, "f"), (0, 0x10, "init_module")]})
    assert mm.symbolize(0x1008) == "f+0x8/0x10 [m]"
    assert mm.symbolize(0x1010) is None and mm.symbolize(0xFFF) is None


def test_module_map_reads_sections_and_symbols_of_a_real_object(tmp_path):
    """Against an ELF the host compiler makes: sections from the guest's sysfs listing, symbol
    offsets and sizes from the file."""
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    src = tmp_path / "m.c"
    src.write_text("int first(int x) { return x + 1; }\nint second(int x) { return first(x) * 3; }\n")
    obj = tmp_path / "m.o"
    subprocess.run(["gcc", "-O2", "-fno-inline", "-c", str(src), "-o", str(obj)], check=True)
    listing = "/sys/module/m/sections/.text:0xffffffffc0100000\n/sys/module/m/sections/.bss:0xffffffffc0102000\n"
    mm = debug.module_map("m", obj, listing)
    assert mm.sections[".text"] == 0xFFFFFFFFC0100000
    names = [n for _, _, n in mm.symbols[".text"]]
    assert names == sorted(names, key=lambda n: dict((n2, o) for o, _, n2 in mm.symbols[".text"])[n])
    assert {"first", "second"} <= set(names)
    start = dict((n, o) for o, _, n in mm.symbols[".text"])["second"]
    assert mm.symbolize(0xFFFFFFFFC0100000 + start + 1).startswith("second+0x1/")


def test_the_scan_waits_out_kmemleaks_minimum_age_and_scans_twice():
    first, second = debug.kmemleak_scan_commands(5.5)
    assert first.count("echo scan") == 2 and "stack=off" in first and "sleep" not in first
    assert "sleep 5.5" in second and second.count("echo scan") == 1 and second.endswith(f"cat {debug.KMEMLEAK}")
    assert "sleep 0.0" in debug.kmemleak_scan_commands(-3)[1]
