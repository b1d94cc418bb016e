"""A kernel report's ``func+0xoff/0xsize [module]`` to the module's source line: the frames a report
gives, in order of trust, and a real lookup with the real addr2line in a real object file with DWARF
(built here by gcc, laid out as kharness lays out a build: a shadow tree in the cache whose sources
are links to the user's files, and headers in the cache)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kharness.build import sourceline as sl

X86_OOPS = """\
<1>[    5.101] BUG: kernel NULL pointer dereference, address: 0000000000000000
<4>[    5.104] RIP: 0010:init_oops_init+0x23/0x36 [init_oops]
<4>[    5.110] Call Trace:
<4>[    5.110]  <TASK>
<4>[    5.111]  ? __die+0x1f/0x70
<4>[    5.112]  ? init_oops_init+0x29/0x36 [init_oops]
<4>[    5.113]  helper+0x10/0x20 [init_oops 0123abcd]
<4>[    5.113]  other_fn+0x10/0x20 [other_mod]
<4>[    5.114]  do_one_initcall+0x56/0x220
"""


def test_frames_faulting_instruction_first_then_reliable_return_addresses():
    assert sl.frames(X86_OOPS, "init_oops") == [
        sl.Frame("init_oops_init", 0x23, "init_oops"),     # RIP: exact
        sl.Frame("helper", 0xf, "init_oops")]               # a return address: one before it
    assert sl.frames(X86_OOPS, "init-oops") == sl.frames(X86_OOPS, "init_oops")
    assert sl.frames(X86_OOPS, "nobody") == []


@pytest.mark.parametrize("line", [
    "[   12.3] pc : m_init+0x1c/0x1000 [m]",                                      # arm64
    "[   12.3] PC is at m_init+0x1c/0x1000 [m]",                                  # arm
    "[   12.3] NIP [c008000000a2001c] m_init+0x1c/0x60 [m]",                      # powerpc
    "EIP: m_init+0x1c/0x30 [m]",                                                  # i386
])
def test_every_architecture_s_faulting_instruction_line(line):
    assert sl.frames(line, "m") == [sl.Frame("m_init", 0x1c, "m")]


def _build(tmp_path: Path, prefix: str) -> tuple[Path, Path, Path, int]:
    """A module directory, its object built in a shadow tree under a cache (with the kernel's
    -fno-delete-null-pointer-checks, or the store through NULL would be dropped), and the line
    of the call that faults (an inlined helper from a header in the cache does the store)."""
    cache = tmp_path / "cache"
    headers = cache / "headers"
    headers.mkdir(parents=True)
    (headers / "poke.h").write_text("static inline __attribute__((always_inline)) void poke(int *p)\n{\n\t*p = 42;\n}\n")
    mod = tmp_path / "repo" / "mymod"
    mod.mkdir(parents=True)
    (mod / "m.c").write_text('#include "poke.h"\n\nint __attribute__((section(".init.text"))) m_init(void)\n{\n'
                             '\tint *volatile p = 0;\n\n\tpoke(p);\n\treturn 0;\n}\n')
    shadow = cache / "builds" / "mymod-x" / "tree" / "mymod"
    shadow.mkdir(parents=True)
    (shadow / "m.c").symlink_to(mod / "m.c")
    ko = shadow / "m.ko"
    subprocess.run([f"{prefix}gcc", "-g", "-O2", "-fno-delete-null-pointer-checks", "-I", str(headers),
                    "-c", str(shadow / "m.c"), "-o", str(ko)],
                   check=True, timeout=120)
    return cache, mod, ko, 7


@pytest.mark.parametrize("prefix", ["", "aarch64-linux-gnu-"])
def test_an_address_resolves_to_the_module_s_line_past_an_inlined_kernel_helper(tmp_path, monkeypatch, prefix):
    if not shutil.which(f"{prefix}gcc") or not shutil.which(f"{prefix}addr2line"):
        pytest.skip(f"no {prefix}gcc / {prefix}addr2line on this host")
    cache, mod, ko, call_line = _build(tmp_path, prefix)
    monkeypatch.setenv("KHARNESS_CACHE", str(cache))
    tool = sl.addr2line_for(prefix)
    section, value = sl.symbol(ko, "m_init")
    assert section == ".init.text"
    # The store: the first address whose innermost location is the header's (in the cache).
    store = next(off for off in range(64)
                 if any(f.endswith("poke.h") for f, _ in sl.addr2line(tool, ko, section, value + off)))
    report = f"[   12.3] RIP: 0010:m_init+{store:#x}/0x40 [mymod]\n"
    where = sl.locate(report, "mymod", ko, mod, tool)
    # The user's file (the shadow's link resolved), at the call: not the cache's header.
    assert where == sl.SourceLine(str((mod / "m.c").resolve()), call_line)


def test_no_line_without_debug_info_a_tool_or_a_built_module(tmp_path, monkeypatch):
    if not shutil.which("gcc") or not shutil.which("addr2line"):
        pytest.skip("no gcc / addr2line on this host")
    cache, mod, ko, _ = _build(tmp_path, "")
    monkeypatch.setenv("KHARNESS_CACHE", str(cache))
    subprocess.run(["strip", "--strip-debug", str(ko)], check=True, timeout=60)
    report = "RIP: 0010:m_init+0x1/0x40 [mymod]\n"
    assert sl.locate(report, "mymod", ko, mod, "addr2line") is None
    finding = {"module": "mymod", "report": report}
    result = {"modules": [{"name": "mymod", "path": str(tmp_path / "gone.ko")}]}
    assert sl.locate_finding(finding, result, mod, "") is None                    # the .ko is gone
    assert sl.locate_finding(finding, {"modules": []}, mod, "") is None            # not a module of the run
    assert sl.locate_finding({"report": report}, result, mod, "") is None          # blames no module
    assert sl.addr2line_for("no-such-cross-") is None
