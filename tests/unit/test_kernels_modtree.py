"""kharness.kernels.modtree: depmod's index files parsed, and the chain of kernel modules to load
before a module, on small fabricated trees (the real 6.1 tree: test_kernels_modtree_real.py)."""

from __future__ import annotations

import lzma
import os
import shutil

import pytest
import zstandard

from kharness import seal
from kharness.errors import UsageError
from kharness.kernels import modstore
from kharness.kernels.modtree import (ChainModule, MissingKernelModule, ModuleTree, dependency_chain,
                                      external_depends, normalise_alias, parse_builtin_modinfo,
                                      parse_modules_alias, parse_modules_dep, parse_modules_softdep,
                                      parse_modules_symbols, read_tree)

# Shaped like Debian 6.1's: depmod lists every dependency, each before the ones it needs.
DEP = """\
kernel/sound/core/snd.ko: kernel/sound/soundcore.ko
kernel/sound/soundcore.ko:
kernel/sound/core/snd-timer.ko: kernel/sound/core/snd.ko kernel/sound/soundcore.ko
kernel/sound/core/snd-pcm.ko: kernel/sound/core/snd-timer.ko kernel/sound/core/snd.ko kernel/sound/soundcore.ko
kernel/sound/drivers/snd-dummy.ko: kernel/sound/core/snd-pcm.ko kernel/sound/core/snd-timer.ko kernel/sound/core/snd.ko kernel/sound/soundcore.ko
kernel/drivers/media/mc/mc.ko:
kernel/drivers/media/v4l2-core/videodev.ko: kernel/drivers/media/mc/mc.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/lib/crc-t10dif.ko: kernel/crypto/crct10dif_common.ko
kernel/crypto/crct10dif_common.ko:
kernel/crypto/crct10dif_generic.ko: kernel/crypto/crct10dif_common.ko
kernel/drivers/scsi/scsi_debug.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko kernel/lib/crc-t10dif.ko kernel/crypto/crct10dif_common.ko
kernel/drivers/ipmi/ipmi_msghandler.ko:
kernel/drivers/ipmi/ipmi_devintf.ko: kernel/drivers/ipmi/ipmi_msghandler.ko
kernel/drivers/i2c/i2c-stub.ko:
"""
ALIAS = """\
# Aliases extracted from modules themselves.
alias crypto-crct10dif crct10dif_generic
alias crct10dif crct10dif_generic
alias pci:v00008086d*sv*sd*bc*sc*i* snd_dummy
alias char-major-81-* videodev
"""
SOFTDEP = """\
# Soft dependencies extracted from modules themselves.
softdep crc-t10dif pre: crct10dif
softdep ipmi_msghandler post: ipmi_devintf
softdep cifs gcm
softdep snd pre: no-such-module
"""
BUILTIN = "kernel/drivers/usb/core/usbcore.ko\nkernel/fs/configfs/configfs.ko\n"


def _tree(label="6.1 for x86_64", **kw) -> ModuleTree:
    paths, deps = parse_modules_dep(DEP)
    return ModuleTree(label=label, paths=paths, deps=deps, extra_aliases=tuple(parse_modules_alias(ALIAS)),
                      softdeps=parse_modules_softdep(SOFTDEP), builtin=frozenset({"usbcore", "configfs"}),
                      builtin_aliases=(("fs_configfs", "configfs"),), **kw)


def names(chain: list[ChainModule]) -> list[str]:
    return [c.name for c in chain]


def test_modules_dep_parsed_with_names_normalised():
    paths, deps = parse_modules_dep(DEP)
    assert paths["snd_dummy"] == "kernel/sound/drivers/snd-dummy.ko"
    assert deps["snd_pcm"] == ("snd_timer", "snd", "soundcore")
    assert deps["soundcore"] == ()


def test_softdep_pre_post_and_words_before_them_ignored():
    soft = parse_modules_softdep(SOFTDEP)
    assert soft["crc_t10dif"] == (("crct10dif",), ())
    assert soft["ipmi_msghandler"] == ((), ("ipmi_devintf",))
    assert soft["cifs"] == ((), ())     # "softdep cifs gcm": kmod ignores words before pre:/post:


def test_alias_normalisation_keeps_ranges_in_brackets():
    assert normalise_alias("crypto-crc32c") == "crypto_crc32c"
    assert normalise_alias("of:N*T*Cfoo-[a-c]bar-x") == "of:N*T*Cfoo_[a-c]bar_x"


def test_builtin_modinfo_aliases():
    data = b"configfs.alias=fs-configfs\0configfs.license=GPL\0ext4.alias=ext3\0"
    assert parse_builtin_modinfo(data) == [("fs_configfs", "configfs"), ("ext3", "ext4")]


def test_modules_symbols():
    text = "# Aliases for symbols\nalias symbol:__video_register_device videodev\nalias symbol:snd_card_new snd\n"
    assert parse_modules_symbols(text) == {"__video_register_device": "videodev", "snd_card_new": "snd"}


def test_snd_dummy_chain_in_modules_dep_order():
    chain = dependency_chain(_tree(), {"snd-dummy": "mysound"})
    assert names(chain) == ["soundcore", "snd", "snd_timer", "snd_pcm", "snd_dummy"]
    assert chain[-1].path == "kernel/sound/drivers/snd-dummy.ko"
    assert chain[-1].guest_file == "snd-dummy.ko"
    assert all(c.wanted_by for c in chain) and chain[-1].wanted_by == "mysound"
    assert not any(c.soft for c in chain)


def test_chains_of_several_names_are_merged_without_repeats():
    chain = dependency_chain(_tree(), ["snd-pcm", "videodev", "snd_dummy", "snd"])
    assert names(chain) == ["soundcore", "snd", "snd_timer", "snd_pcm", "mc", "videodev", "snd_dummy"]


def test_each_module_comes_after_everything_it_depends_on():
    tree = _tree()
    chain = names(dependency_chain(tree, ["scsi_debug", "snd-dummy", "videodev", "ipmi_msghandler"]))
    for i, n in enumerate(chain):
        assert set(tree.deps[n]) <= set(chain[:i]), n


def test_softdep_pre_before_and_post_after_marked_soft():
    chain = dependency_chain(_tree(), ["scsi_debug"])
    assert names(chain) == ["crct10dif_common", "crct10dif_generic", "crc_t10dif", "scsi_common", "scsi_mod",
                            "scsi_debug"]
    assert {c.name for c in chain if c.soft} == {"crct10dif_generic"}   # through the alias "crct10dif"
    chain = dependency_chain(_tree(), ["ipmi_msghandler"])
    assert names(chain) == ["ipmi_msghandler", "ipmi_devintf"]
    assert [c.soft for c in chain] == [False, True]


def test_a_module_needed_both_softly_and_hard_is_hard():
    chain = dependency_chain(_tree(), ["ipmi_msghandler", "ipmi_devintf"])
    assert names(chain) == ["ipmi_msghandler", "ipmi_devintf"]
    assert not any(c.soft for c in chain)


def test_a_soft_dependency_the_kernel_lacks_is_no_error():
    assert names(dependency_chain(_tree(), ["snd"])) == ["soundcore", "snd"]


def test_builtin_dependencies_need_nothing():
    assert dependency_chain(_tree(), ["usbcore", "configfs", "fs-configfs"]) == []


def test_aliases_resolve_to_modules():
    assert names(dependency_chain(_tree(), ["char-major-81-0"])) == ["mc", "videodev"]
    assert _tree().status("crypto-crct10dif") == "module"
    assert _tree().status("usbcore") == "builtin"
    assert _tree().status("videobuf2-core") == "absent"


def test_missing_dependency_named_before_boot():
    with pytest.raises(MissingKernelModule) as ei:
        dependency_chain(_tree("6.1 for rpi2"), {"videodev2": "myv4l", "snd-dummy": "myv4l", "drm": "mydrm"})
    e = ei.value
    assert isinstance(e, UsageError) and e.exit_code == 2
    assert e.message == "myv4l needs `videodev2`; mydrm needs `drm`, which 6.1 for rpi2 does not ship"
    assert e.missing == {"videodev2": "myv4l", "drm": "mydrm"}


def test_issue_wording_for_one_missing_module():
    with pytest.raises(MissingKernelModule) as ei:
        dependency_chain(ModuleTree(label="6.1 for rpi2"), {"videodev": "v4l2loopback"})
    assert ei.value.message == "v4l2loopback needs `videodev`, which 6.1 for rpi2 does not ship"


def test_a_dependency_the_tree_names_but_lacks_is_reported():
    # A tree read from modinfo (a kernel kharness built) may name a module that is not there.
    tree = ModuleTree(label="6.1 for ppc64", paths={"a": "a.ko"}, deps={"a": ("b",)})
    with pytest.raises(MissingKernelModule, match="a needs `b`, which 6.1 for ppc64 does not ship"):
        dependency_chain(tree, ["a"])


def test_cycles_end():
    tree = ModuleTree(label="x", paths={"a": "a.ko", "b": "b.ko"}, deps={"a": ("b",), "b": ("a",)})
    assert sorted(names(dependency_chain(tree, ["a"]))) == ["a", "b"]


def test_external_depends_leaves_out_the_directorys_own_modules():
    built = {"kdatasize": [], "scull": ["videodev", "kdatasize"], "sculld": ["videodev", "snd-pcm"]}
    assert external_depends(built) == {"videodev": "scull", "snd_pcm": "sculld"}


def test_read_tree_from_files(tmp_path):
    (tmp_path / "modules.dep").write_text(DEP)
    (tmp_path / "modules.alias").write_text(ALIAS)
    (tmp_path / "modules.softdep").write_text(SOFTDEP)
    (tmp_path / "modules.builtin").write_text(BUILTIN)
    (tmp_path / "modules.symbols").write_text("alias symbol:snd_pcm_new snd_pcm\n")
    tree = read_tree(tmp_path, "6.1 for x86_64")
    chain = dependency_chain(tree, ["scsi_debug", "configfs"])
    assert names(chain)[-1] == "scsi_debug"
    assert chain[0].source == tmp_path / "kernel/crypto/crct10dif_common.ko"
    assert tree.exports == {"snd_pcm_new": "snd_pcm"}
    assert tree.symvers == {}


# --- payloads --------------------------------------------------------------------------------------

ELF = b"\x7fELF" + b"module body" * 100


def test_payload_keeps_ko_and_xz_and_decompresses_zstd(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    (root / "k").mkdir(parents=True)
    (root / "k/a.ko").write_bytes(ELF)
    (root / "k/b-x.ko.xz").write_bytes(lzma.compress(ELF))
    (root / "k/c.ko.zst").write_bytes(zstandard.ZstdCompressor().compress(ELF + b"c"))
    tree = ModuleTree(label="7.2 for x86_64", root=root,
                      paths={"a": "k/a.ko", "b_x": "k/b-x.ko.xz", "c": "k/c.ko.zst"},
                      deps={"a": (), "b_x": ("a",), "c": ("b_x",)})
    chain = dependency_chain(tree, ["c"])
    payload = modstore.payload_for(chain)
    assert payload == {"a.ko": ELF, "b-x.ko.xz": (root / "k/b-x.ko.xz").read_bytes(), "c.ko": ELF + b"c"}
    # Decompressed once per content: a second run reads the cached file.
    cached = modstore.payload_paths(chain)["c.ko"]
    assert cached.parent == tmp_path / "cache" / "modules-unzstd"
    mtime = cached.stat().st_mtime_ns
    assert modstore.payload_for(chain)["c.ko"] == ELF + b"c"
    assert cached.stat().st_mtime_ns == mtime
    from kharness.image.overlay import files_key   # what the chain's image is cached by
    assert files_key(payload) == files_key(dict(reversed(payload.items())))
    assert files_key(payload) != files_key({**payload, "a.ko": ELF + b"x"})


def test_payload_refuses_a_zstd_file_that_is_no_module(tmp_path, monkeypatch):
    from kharness.errors import InfraError
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "c.ko.zst").write_bytes(zstandard.ZstdCompressor().compress(b"not an elf"))
    tree = ModuleTree(label="x", root=tmp_path, paths={"c": "c.ko.zst"}, deps={"c": ()})
    with pytest.raises(InfraError, match="does not decompress to a kernel module"):
        modstore.payload_for(dependency_chain(tree, ["c"]))


def test_build_tree_from_a_kernel_build_directory(tmp_path, monkeypatch):
    # A kernel kharness built: modules.order, modules.builtin, Module.symvers, no depmod.
    (tmp_path / "modules.order").write_text("drivers/misc/cxl/cxl.ko\ndrivers/char/not-built.ko\n")
    (tmp_path / "modules.builtin").write_text("kernel/fs/binfmt_elf.ko\n")
    (tmp_path / "Module.symvers").write_text("0x1\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n"
                                             "0x2\tcxl_foo\tdrivers/misc/cxl/cxl\tEXPORT_SYMBOL_GPL\t\n")
    (tmp_path / "drivers/misc/cxl").mkdir(parents=True)
    (tmp_path / "drivers/misc/cxl/cxl.ko").write_bytes(b"")
    # (its modinfo as read_modinfo would give it: kharness.elf has tests of its own)
    monkeypatch.setattr(modstore, "read_modinfo", lambda p: {"depends": ["binfmt_elf"], "alias": ["pci:v1014*"]})
    tree = modstore.build_tree(tmp_path, "6.1.176-kharness", "6.1", "ppc64")
    assert tree.label == "6.1 for ppc64"
    assert names(dependency_chain(tree, ["cxl"])) == ["cxl"]          # binfmt_elf is built in
    assert tree.status("not-built") == "absent"
    assert tree.status("pci:v1014d0001") == "module"
    assert tree.exports == {"cxl_foo": "cxl"}
    assert tree.symvers["printk"].module == "vmlinux"
    with pytest.raises(MissingKernelModule, match="needs `videodev`, which 6.1 for ppc64 does not ship"):
        dependency_chain(tree, {"videodev": "mymod"})


# --- the cache entry: real depmod on modules made by the host compiler ---------------------------

_A = ('void a_func(void) {}\n'
      'const char ksym[] __attribute__((section("__ksymtab_strings"))) = "a_func";\n'
      'const char modinfo[] __attribute__((section(".modinfo"))) = "license=GPL";\n')
_B = ('extern void a_func(void);\nvoid b_func(void) { a_func(); }\n'
      'const char modinfo[] __attribute__((section(".modinfo"))) = "license=GPL\\0softdep=pre: c";\n')
_C = 'void c_func(void) {}\n'


def _deb(tmp_path, name: str, files: dict[str, bytes]):
    import subprocess
    from kharness.debian.index import Pkg
    src = tmp_path / f"pkg-{name}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN/control").write_text(f"Package: {name}\nVersion: 1\nArchitecture: all\n"
                                        "Maintainer: t <t@t>\nDescription: t\n")
    deb = tmp_path / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(src), str(deb)],
                   check=True, capture_output=True, timeout=120)
    return Pkg(name, "1", "all", f"pool/{name}.deb", deb.stat().st_size, seal.file_sha256(deb), "", "sid"), deb


def _ko(tmp_path, name: str, source: str) -> bytes:
    import subprocess
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    subprocess.run(["gcc", "-c", "-o", str(tmp_path / f"{name}.o"), str(c)], check=True, timeout=60)
    return (tmp_path / f"{name}.o").read_bytes()


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("dpkg-deb") and
                         (shutil.which("depmod") or os.path.exists("/usr/sbin/depmod"))),
                    reason="needs gcc, dpkg-deb and depmod (kharness's own system packages)")
def test_modules_dep_unpacks_runs_depmod_seals_and_remakes_a_damaged_entry(tmp_path, monkeypatch):
    from kharness.kernels.resolve import KernelSpec
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    rel = "9.9.9+deb99-test"
    mods = f"usr/lib/modules/{rel}"     # merged /usr, as 7.2's split packages ship it
    image, _ = _deb(tmp_path, f"linux-binary-{rel}", {f"{mods}/vmlinuz": b"kernel image"})
    modules, _ = _deb(tmp_path, f"linux-modules-{rel}", {
        f"{mods}/kernel/x/a-mod.ko": _ko(tmp_path, "a", _A), f"{mods}/kernel/x/b.ko": _ko(tmp_path, "b", _B),
        f"{mods}/kernel/x/c.ko": _ko(tmp_path, "c", _C), f"{mods}/modules.builtin": b"kernel/fs/configfs.ko\n"})
    debs = {p.sha256: tmp_path / f"{p.name}.deb" for p in (image, modules)}
    fetched = []
    monkeypatch.setattr(modstore, "fetch_pkg", lambda p: fetched.append(p.name) or debs[p.sha256])
    spec = KernelSpec(rel, "9.9", "sid", "1", (image, modules), (), None)

    tree = modstore.modules_dep(spec, "x86_64")
    assert tree.label == "9.9 for x86_64"
    entry = tree.root.parents[2]
    assert tree.root == entry / "lib/modules" / rel and not (entry / "usr").exists()
    assert not (tree.root / "vmlinuz").exists()          # the kernel image stays out of the tree
    assert seal.problem(entry, deep=True) is None
    chain = dependency_chain(tree, {"b": "mymod", "configfs": "mymod"})
    assert [(c.name, c.soft) for c in chain] == [("c", True), ("a_mod", False), ("b", False)]
    assert tree.exports == {"a_func": "a_mod"}
    assert sorted(fetched) == sorted([image.name, modules.name])

    fetched.clear()
    assert modstore.modules_dep(spec, "x86_64").paths == tree.paths
    assert fetched == []                                 # sealed and sound: used as it is
    (tree.root / "modules.dep").write_text("kernel/x/b.ko:\n")   # damaged on disk
    again = modstore.modules_dep(spec, "x86_64")
    assert fetched and [c.name for c in dependency_chain(again, ["b"])] == ["c", "a_mod", "b"]
