"""The module tree of Debian's real 6.1 x86_64 kernel: unpacked and depmod'ed by kharness, read,
and asked for the chains the issue names. Uses the normal kernel cache (downloading the image
package the first time, like the integration tests: no QEMU is started)."""

from __future__ import annotations

import pytest

from kharness import seal
from kharness.kernels.modstore import modules_dep, payload_for
from kharness.kernels.modtree import MissingKernelModule, dependency_chain
from kharness.kernels.resolve import resolve_kernel
from kharness.kernels.store import ensure_headers
from kharness.kernels.symbols import GPL_ONLY, NOT_EXPORTED, NOT_LOADED, explain_unknown_symbols
from kharness.targets import get_target


@pytest.fixture(scope="module")
def tree():
    spec = resolve_kernel(get_target("x86_64"), "6.1")
    return modules_dep(spec, "x86_64", ensure_headers(spec).build_dir)


def test_the_entry_is_sealed_and_holds_depmods_files(tree):
    entry = tree.root.parents[2]
    assert seal.problem(entry) is None
    for f in ("modules.dep", "modules.alias", "modules.softdep", "modules.symbols", "modules.builtin"):
        assert (tree.root / f).is_file(), f
    assert len(tree.paths) > 3000 and tree.builtin


def test_videodev_chain(tree):
    chain = dependency_chain(tree, {"videodev": "v4l2loopback"})
    assert [c.name for c in chain] == ["mc", "videodev"]
    assert chain[-1].path == "kernel/drivers/media/v4l2-core/videodev.ko"
    assert chain[-1].wanted_by == "v4l2loopback" and chain[0].wanted_by == "videodev"
    payload = payload_for(chain)
    assert list(payload) == ["mc.ko", "videodev.ko"]
    assert all(data[:4] == b"\x7fELF" for data in payload.values())


def test_snd_dummy_chain(tree):
    chain = dependency_chain(tree, ["snd-dummy"])
    assert [c.name for c in chain] == ["soundcore", "snd", "snd_timer", "snd_pcm", "snd_dummy"]
    assert not any(c.soft for c in chain)


def test_drm_display_driver_chain_and_builtins(tree):
    # The DRM driver of the issue: depends: drm,drm_kms_helper,usbcore.
    chain = dependency_chain(tree, {"drm": "udl", "drm_kms_helper": "udl", "usbcore": "udl"})
    names = [c.name for c in chain]
    assert names.index("drm") < names.index("drm_kms_helper")
    assert "usbcore" in names or tree.status("usbcore") == "builtin"
    for i, n in enumerate(names):   # every module after all it depends on
        assert set(tree.deps[n]) <= set(names[:i]), n


def test_scsi_debug_honours_its_soft_dependencies(tree):
    chain = dependency_chain(tree, ["scsi_debug"])
    # crc-t10dif's "softdep crc-t10dif pre: crct10dif": every module of that alias, before it, softly.
    assert [(c.name, c.soft) for c in chain] == [
        ("crct10dif_common", False), ("crct10dif_pclmul", True), ("crct10dif_generic", True),
        ("crc_t10dif", False), ("scsi_common", False), ("scsi_mod", False), ("scsi_debug", False)]


def test_a_module_the_kernel_lacks(tree):
    with pytest.raises(MissingKernelModule, match=r"mymod needs `gpio_sim`, which 6.1 for x86_64 does not ship"):
        dependency_chain(tree, {"gpio_sim": "mymod"})


def test_unknown_symbols_explained_from_the_real_symvers(tree):
    log = ("[    3.1] v4l2loopback: Unknown symbol __video_register_device (err -2)\n"
           "[    3.2] v4l2loopback: Unknown symbol init_uts_ns (err -2)\n"
           "[    3.3] v4l2loopback: Unknown symbol no_such_symbol_in_6_1 (err -2)\n")
    report = explain_unknown_symbols(log, tree, "Proprietary")
    assert [(p.symbol, p.kind, p.exporter) for p in report.problems] == [
        ("__video_register_device", NOT_LOADED, "videodev"),
        ("init_uts_ns", GPL_ONLY, "vmlinux"),
        ("no_such_symbol_in_6_1", NOT_EXPORTED, None)]
    assert report.summary.startswith("unresolved symbols: `__video_register_device` is exported by videodev, "
                                     "which was not loaded; ")
