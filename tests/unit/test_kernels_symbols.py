"""kharness.kernels.symbols: the kernel's "Unknown symbol" lines explained from its exports."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kharness.kernels.modtree import ModuleTree
from kharness.kernels.symbols import (GPL_ONLY, NAMESPACE, NOT_EXPORTED, NOT_LOADED, REFUSED, VERSION_MISMATCH,
                                      Export, explain_unknown_symbols, parse_symbol_lines, read_module_crcs,
                                      read_symvers, summarise)

SYMVERS = (
    "0x4c9d28b0\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n"
    "0x039823de\tinit_uts_ns\tvmlinux\tEXPORT_SYMBOL_GPL\t\n"
    "0xffa07199\t__video_register_device\tdrivers/media/v4l2-core/videodev\tEXPORT_SYMBOL\t\n"
    "0x11111111\tvb2_gpl_thing\tdrivers/media/common/videobuf2/videobuf2-common\tEXPORT_SYMBOL_GPL\t\n"
    "0x7fa19cc4\talloc_free_mem_region\tvmlinux\tEXPORT_SYMBOL_GPL\tCXL\n"
)


def _tree(**kw) -> ModuleTree:
    return ModuleTree(label="6.1 for x86_64", extra_symvers=read_symvers(SYMVERS), **kw)


def test_read_symvers():
    s = read_symvers(SYMVERS + "garbage line\n")
    assert s["__video_register_device"] == Export(0xffa07199, "videodev", False, "")
    assert s["vb2_gpl_thing"].module == "videobuf2_common" and s["vb2_gpl_thing"].gpl_only
    assert s["alloc_free_mem_region"].namespace == "CXL"
    assert len(s) == 5


def test_log_lines_parsed_with_timestamps_and_pairs_merged():
    log = ("[    3.101] mymod: disagrees about version of symbol printk\n"
           "[    3.102] mymod: Unknown symbol printk (err -22)\n"
           "[    3.103] my-other: Unknown symbol foo (err -2)\n"
           "[    3.104] random line about symbols\n")
    assert parse_symbol_lines(log) == {("mymod", "printk"): {"version": "disagrees", "err": -22},
                                       ("my_other", "foo"): {"err": -2}}


def test_exported_by_a_module_that_was_not_loaded():
    r = explain_unknown_symbols("v4l2loopback: Unknown symbol __video_register_device (err -2)", _tree(), "GPL")
    (p,) = r.problems
    assert (p.module, p.symbol, p.kind, p.exporter, p.err) == \
        ("v4l2loopback", "__video_register_device", NOT_LOADED, "videodev", -2)
    assert p.message == "`__video_register_device` is exported by videodev, which was not loaded"
    assert r.summary == "unresolved symbols: " + p.message


def test_exports_from_modules_symbols_when_there_is_no_symvers():
    tree = ModuleTree(label="6.1 for x86_64", extra_exports={"snd_card_new": "snd"})
    (p,) = explain_unknown_symbols("mysnd: Unknown symbol snd_card_new (err -2)", tree, "GPL").problems
    assert p.kind == NOT_LOADED and p.exporter == "snd"


def test_gpl_only_export_used_by_a_non_gpl_module():
    log = "prop: Unknown symbol init_uts_ns (err -2)\nprop: Unknown symbol vb2_gpl_thing (err -2)\n"
    r = explain_unknown_symbols(log, _tree(), "Proprietary")
    assert [p.kind for p in r.problems] == [GPL_ONLY, GPL_ONLY]
    assert r.problems[0].message == ('`init_uts_ns` is exported GPL-only (EXPORT_SYMBOL_GPL) by the kernel itself, '
                                     'and prop\'s license "Proprietary" is not GPL-compatible')
    assert "by videobuf2_common" in r.problems[1].message
    # Per-module licenses; a GPL-compatible one is not the problem.
    r = explain_unknown_symbols(log, _tree(), {"prop": "Dual MIT/GPL"})
    assert [p.kind for p in r.problems] == [REFUSED, NOT_LOADED]
    r = explain_unknown_symbols(log, _tree(), None)
    assert "missing license" in r.problems[0].message


def test_exported_by_nothing():
    (p,) = explain_unknown_symbols("m: Unknown symbol folio_new_thing (err -2)", _tree(), "GPL").problems
    assert p.kind == NOT_EXPORTED and p.exporter is None
    assert p.message.startswith("nothing in 6.1 for x86_64 exports `folio_new_thing`")


def test_version_mismatch_with_both_crcs():
    log = "m: disagrees about version of symbol printk\nm: Unknown symbol printk (err -22)\n"
    (p,) = explain_unknown_symbols(log, _tree(), "GPL", module_crcs={"m": {"printk": 0xdeadbeef}}).problems
    assert p.kind == VERSION_MISMATCH and p.err == -22
    assert "(its CRC 0xdeadbeef, the kernel's 0x4c9d28b0)" in p.message
    (p,) = explain_unknown_symbols("m: no symbol version for printk\n", _tree(), "GPL").problems
    assert p.kind == VERSION_MISMATCH and "has no version (CRC)" in p.message


def test_namespace_not_imported():
    log = ("m: module uses symbol (alloc_free_mem_region) from namespace CXL, but does not import it.\n"
           "m: Unknown symbol alloc_free_mem_region (err -22)\n")
    (p,) = explain_unknown_symbols(log, _tree(), "GPL").problems
    assert p.kind == NAMESPACE and "MODULE_IMPORT_NS(CXL)" in p.message


def test_exporter_loaded_yet_refused():
    (p,) = explain_unknown_symbols("m: Unknown symbol __video_register_device (err -2)", _tree(), "GPL",
                                   loaded=["videodev"]).problems
    assert p.kind == REFUSED and "(err -2)" in p.message


def test_nothing_to_say():
    r = explain_unknown_symbols("all quiet\n", _tree(), "GPL")
    assert r.problems == () and r.summary == ""


def test_summary_is_one_line_and_capped():
    log = "".join(f"m: Unknown symbol s{i} (err -2)\n" for i in range(5))
    s = explain_unknown_symbols(log, _tree(), "GPL").summary
    assert "\n" not in s and s.count("nothing in") == 3 and s.endswith("; and 2 more")
    assert summarise([]) == ""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host compiler kharness builds with")
def test_module_crcs_read_from_versions_section(tmp_path):
    # struct modversion_info as modpost writes it: an unsigned long CRC, then a 56-byte name.
    src = tmp_path / "v.c"
    src.write_text('struct mv { unsigned long crc; char name[64 - sizeof(unsigned long)]; };\n'
                   'const struct mv v[] __attribute__((section("__versions"))) = '
                   '{ { 0x4c9d28b0, "printk" }, { 0xffa07199, "__video_register_device" } };\n')
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / "v.o"), str(src)], check=True, timeout=60)
    assert read_module_crcs(tmp_path / "v.o") == {"printk": 0x4c9d28b0, "__video_register_device": 0xffa07199}
