"""Distro-guest images without a boot: names and suites, QEMU's arguments, kharness's SSH keys, the
cache of the root filesystem (mmdebstrap faked), the initramfs's module chain, and the real shell
scripts (the customization runs on a scratch tree: it only handles files)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from kharness.errors import UsageError
from kharness.image import distro, rootfs
from kharness.image.distro_initrd import initrd_modules
from kharness.kernels.modtree import ModuleTree
from kharness.paths import data_dir
from kharness.targets import all_targets, get_target

IMAGES = data_dir("images")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


# --- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, suite", [("6.1", "bookworm"), ("6.1.0-27-amd64", "bookworm"),
                                          ("6.12.117+deb13-arm64", "trixie"), ("7.2", "sid"),
                                          ("5.10.0-32-amd64", "bullseye")])
def test_suite_for(given, suite):
    assert distro.suite_for(given) == suite


@pytest.mark.parametrize("given", ["4.19", "stable", "", "6"])
def test_suite_for_unknown_is_a_usage_error(given):
    with pytest.raises(UsageError, match="no Debian userland"):
        distro.suite_for(given)


def test_guest_packages_are_checked():
    assert distro.guest_packages("v4l-utils, i2c-tools,,libstdc++6,python3.11") == \
        ("v4l-utils", "i2c-tools", "libstdc++6", "python3.11")
    assert distro.guest_packages(None) == ()
    for bad in ("V4l", "a;rm -rf /", "-x", "x", "pkg=1.0", "a b", "../etc"):
        with pytest.raises(UsageError, match="not a Debian package name") as e:
            distro.guest_packages(bad)
        assert "\n" not in str(e.value)


def test_bad_package_is_refused_before_any_work(cache):
    # Neither the kernel nor the spec is looked at: the name is refused first.
    with pytest.raises(UsageError, match="not a Debian package name"):
        distro.ensure_distro(get_target("x86_64"), None, "bookworm", ("ok-pkg", "bad;pkg"), spec=None)
    assert not (cache / "distro").exists()


def test_board_without_distro_guest_is_refused():
    prof = dataclasses.replace(get_target("x86_64"), distro_disk="")
    with pytest.raises(UsageError, match="has no distro guest") as e:
        distro.ensure_distro(prof, None, "bookworm", spec=None)
    assert "x86_64" in e.value.hint and "busybox" in e.value.hint   # where distro guests do run


def test_ppc64_big_endian_has_no_distro_guest():
    # Debian ships no big-endian ppc64 userland in its main archive: said before any work.
    with pytest.raises(UsageError, match="ppc64 has no distro guest"):
        distro.check_target(get_target("ppc64"))


# --- QEMU ----------------------------------------------------------------------------------------

def _image(tmp_path: Path) -> distro.DistroImage:
    return distro.DistroImage(rootfs=tmp_path / "root.ext4", modules=tmp_path / "mods, 1.ext4",
                              initrd=tmp_path / "initrd", key="k", suite="bookworm",
                              packages=distro.DEFAULT_PACKAGES, host_key="ssh-ed25519 AAAA kharness-guest")


@pytest.mark.parametrize("target", ["x86_64", "arm64"])
def test_qemu_args(tmp_path, target):
    prof = get_target(target)
    args = distro.qemu_args(prof, _image(tmp_path), tmp_path / "ov.qcow2", 2222)
    text = " ".join(args)
    assert args[:2] == ("-m", str(prof.distro_memory_mb))
    # Loopback only, and the guest reaches nothing else.
    net = args[args.index("-netdev") + 1]
    assert net == "user,id=kh_net,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22"
    assert f"{prof.distro_net},netdev=kh_net" in args
    assert text.count(f"{prof.distro_disk},drive=") == 2
    assert f"file={tmp_path / 'ov.qcow2'},if=none,id=kh_root,format=qcow2" in text
    # The modules disk is read-only, and a comma in its path is escaped as QEMU wants.
    mods = next(a for a in args if "id=kh_mods" in a)
    assert "readonly=on" in mods and "format=raw" in mods and "mods,, 1.ext4" in mods


def test_a_pi_has_its_root_on_the_sd_card_and_the_rest_on_usb(tmp_path):
    args = distro.qemu_args(get_target("rpi3"), _image(tmp_path), tmp_path / "ov.qcow2", 2222)
    text = " ".join(args)
    assert f"file={tmp_path / 'ov.qcow2'},if=sd,format=qcow2" in text      # the one SD card slot
    assert "usb-storage,drive=kh_mods" in args and "usb-net,netdev=kh_net" in args
    assert "virtio" not in text                                          # no PCI, no virtio-mmio


def test_an_sd_card_overlay_has_a_power_of_two_size(tmp_path):
    base = tmp_path / "root.ext4"
    base.write_bytes(b"")
    os.truncate(base, 700 * 1024 * 1024 + 512)
    info = lambda p: subprocess.run(["qemu-img", "info", "--output=json", str(p)], capture_output=True,
                                    text=True, check=True).stdout
    import json

    card = distro.overlay(get_target("rpi3"), base, tmp_path / "card.qcow2")
    assert json.loads(info(card))["virtual-size"] == 1024 * 1024 * 1024
    disk = distro.overlay(get_target("x86_64"), base, tmp_path / "disk.qcow2")
    assert json.loads(info(disk))["virtual-size"] == base.stat().st_size   # a virtio disk: as is


def test_kernel_append_keeps_the_console():
    words = distro.kernel_append(get_target("x86_64"), None).split()
    assert "systemd.show_status=0" in words
    assert not any(w.startswith(("console=", "init=", "root=")) for w in words)


def test_free_port_is_free_on_loopback():
    port = distro.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_profiles_with_distro_guests_name_their_devices():
    with_distro = [p for p in all_targets().values() if p.distro_disk]
    assert {"x86_64", "arm64", "rpi3", "ppc64le"} <= {p.name for p in with_distro}
    for p in with_distro:
        assert p.distro_net and p.distro_initrd_modules and "ext4" in p.distro_initrd_modules
        assert p.distro_memory_mb >= 512


# --- SSH keys ------------------------------------------------------------------------------------

def test_ssh_keys_are_made_once_and_private(cache):
    import paramiko

    from kharness import sshkeys

    cpath, cline = sshkeys.client_key()
    hpath, hline = sshkeys.guest_host_key()
    assert cpath != hpath and cline != hline
    assert cline.startswith("ssh-ed25519 AAAA") and cline.endswith(" kharness")
    assert hline.endswith(" kharness-guest")
    for p in (cpath, hpath):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        key = paramiko.Ed25519Key.from_private_key_file(str(p))
        assert f"{key.get_name()} {key.get_base64()}" in (cline.rsplit(" ", 1)[0], hline.rsplit(" ", 1)[0])
    assert stat.S_IMODE(cpath.parent.stat().st_mode) == 0o700
    assert sshkeys.client_key() == (cpath, cline)       # kept, not made again
    assert sshkeys.guest_host_key() == (hpath, hline)


# --- the root filesystem's cache (mmdebstrap faked) ----------------------------------------------

def test_rootfs_is_built_once_per_recipe(cache, monkeypatch):
    built, configured = [], []

    def fake(profile, suite, packages, image):
        built.append((suite, tuple(packages)))
        image.write_bytes(b"ext4")

    monkeypatch.setattr(rootfs, "_mmdebstrap", fake)
    x86 = get_target("x86_64")
    monkeypatch.setattr(rootfs, "native", lambda p: p.debian_arch == "amd64")
    a, key_a = rootfs.ensure_rootfs(x86, "bookworm", ("udev", "kmod"), configured.append)
    b, key_b = rootfs.ensure_rootfs(x86, "bookworm", ("kmod", "udev"), configured.append)   # same set
    assert (a, key_a) == (b, key_b) and len(built) == 1 and configured == []
    _, key_c = rootfs.ensure_rootfs(x86, "bookworm", ("kmod", "udev", "i2c-tools"), configured.append)
    assert key_c != key_a and len(built) == 2
    # A foreign root is configured in its first boot before it is sealed.
    arm, _ = rootfs.ensure_rootfs(get_target("arm64"), "bookworm", ("kmod",), configured.append)
    assert configured == [configured[0]] and configured[0].name == rootfs.IMAGE
    assert arm.read_bytes() == b"ext4" and "bookworm-arm64-" in str(arm)


def test_recipe_covers_what_the_image_is_made_of(cache, monkeypatch):
    monkeypatch.setattr(rootfs, "native", lambda p: p.debian_arch == "amd64")   # an amd64 host
    x86 = get_target("x86_64")
    r = rootfs.recipe(x86, "bookworm", ("udev",))
    assert r["suite"] == "bookworm" and r["arch"] == "amd64" and r["packages"] == ["udev"]
    assert set(r["scripts"]) == set(rootfs.SCRIPTS) and r["format"] == rootfs.FORMAT
    assert "init-distro.sh" in rootfs.recipe(get_target("arm64"), "bookworm", ("udev",))["scripts"]
    assert r["client_key"].startswith("ssh-ed25519") and r["host_key"].startswith("ssh-ed25519")
    assert rootfs.recipe(x86, "trixie", ("udev",)) != r


def test_mke2fs_hook_quotes_paths():
    hook = rootfs.mke2fs_hook(Path("/tmp/a dir/it's.ext4"), "kh-root")
    words = shlex.split(hook)
    assert "unshare" in words
    inner = words[words.index("-c") + 1]
    assert "'/tmp/a dir/it'\"'\"'s.ext4'" in inner and "-L kh-root" in inner
    assert "MKE2FS_CONFIG=" in inner


# --- the initramfs's modules ---------------------------------------------------------------------

def test_initrd_modules_follow_modules_dep_and_softdeps(tmp_path):
    paths = {"virtio": "kernel/virtio.ko", "virtio_ring": "kernel/virtio_ring.ko",
             "virtio_pci": "kernel/virtio_pci.ko", "virtio_blk": "kernel/virtio_blk.ko",
             "ext4": "kernel/ext4.ko", "jbd2": "kernel/jbd2.ko", "crc32c_generic": "kernel/crc32c_generic.ko"}
    tree = ModuleTree(label="6.1", root=tmp_path, paths=paths,
                      deps={"virtio_pci": ("virtio_ring", "virtio"), "virtio_blk": ("virtio_ring", "virtio"),
                            "virtio_ring": ("virtio",), "ext4": ("jbd2",)},
                      softdeps={"ext4": (("crc32c_generic",), ())})
    got = [(name, soft) for name, _, soft in initrd_modules(get_target("x86_64"), tree)]
    names = [n for n, _ in got]
    assert names.index("virtio.ko") < names.index("virtio_ring.ko") < names.index("virtio_pci.ko")
    assert names.index("jbd2.ko") < names.index("ext4.ko") and names.index("crc32c_generic.ko") < names.index("ext4.ko")
    assert dict(got)["crc32c_generic.ko"] is True and dict(got)["ext4.ko"] is False
    assert len(names) == len(set(names)) == 7


# --- the scripts ---------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["init-distro.sh", "kh-configure.sh", "distro-customize.sh"])
def test_scripts_parse(script):
    subprocess.run(["sh", "-n", str(IMAGES / script)], check=True)


@pytest.mark.parametrize("keep_debs", [0, 1])
def test_customize_script_on_a_scratch_tree(tmp_path, keep_debs):
    root = tmp_path / "root"
    for d in ("etc/ssh", "var/cache/apt/archives", "var/lib/apt/lists", "lib/systemd/system"):
        (root / d).mkdir(parents=True)
    (root / "etc/ssh/ssh_host_rsa_key").write_text("generated")
    (root / "var/cache/apt/archives/x_1_amd64.deb").write_text("deb")
    (root / "var/lib/apt/lists/x_Packages").write_text("list")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "client.pub").write_text("ssh-ed25519 AAAAclient kharness\n")
    (keys / "host").write_text("PRIVATE\n")
    (keys / "host.pub").write_text("ssh-ed25519 AAAAhost kharness-guest\n")
    subprocess.run(["sh", str(IMAGES / "distro-customize.sh"), str(root), str(keys / "client.pub"),
                    str(keys / "host"), str(keys / "host.pub"), str(keep_debs)], check=True)
    assert (root / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAAclient kharness\n"
    assert stat.S_IMODE((root / "root/.ssh").stat().st_mode) == 0o700
    host = root / "etc/ssh/ssh_host_ed25519_key"
    assert host.read_text() == "PRIVATE\n" and stat.S_IMODE(host.stat().st_mode) == 0o600
    assert not (root / "etc/ssh/ssh_host_rsa_key").exists()   # only the pinned key
    assert "HostKey /etc/ssh/ssh_host_ed25519_key" in (root / "etc/ssh/sshd_config.d/kharness.conf").read_text()
    assert (root / "etc/fstab").read_text().startswith("LABEL=kh-root / ext4")
    net = (root / "etc/systemd/network/10-kharness.network").read_text()
    assert "Address=10.0.2.15/24" in net and "Gateway=10.0.2.2" in net
    for unit in ("serial-getty@.service", "getty.target", "apt-daily.timer", "systemd-timesyncd.service"):
        assert os.readlink(root / "etc/systemd/system" / unit) == "/dev/null"
    assert os.readlink(root / "etc/systemd/system/multi-user.target.wants/systemd-networkd.service") \
        == "/lib/systemd/system/systemd-networkd.service"
    debs = list((root / "var/cache/apt/archives").glob("*.deb"))
    assert len(debs) == keep_debs and len(list((root / "var/lib/apt/lists").iterdir())) == keep_debs


def test_mmdebstrap_failures_say_why(cache, monkeypatch, tmp_path):
    out = ("I: running apt-get update...\nE: Unable to locate package no-such-pkg\n"
           "E: setup failed: E: apt-get ... install kmod no-such-pkg failed\nE: mmdebstrap failed to run\n")
    monkeypatch.setattr(rootfs.proc, "run", lambda *a, **k: subprocess.CompletedProcess(a, 25, out, ""))
    with pytest.raises(UsageError, match="bookworm has no package 'no-such-pkg' for amd64"):
        rootfs._mmdebstrap(get_target("x86_64"), "bookworm", ["kmod", "no-such-pkg"], tmp_path / "root.ext4")
    assert rootfs._why("I: x\nE: Release file for bookworm is expired\nE: setup failed: x failed\n") \
        == "E: Release file for bookworm is expired"


def test_a_board_that_halts_instead_of_powering_off_is_done():
    # A Pi without its watchdog driver halts after the first boot's `poweroff -f`; QEMU runs on.
    assert distro._halted("kh-configure-exit 0\n[  678.65] reboot: System halted\n")
    assert distro._halted("[ 9.1] reboot: Power down\n")
    assert not distro._halted("kh-configure: installing the others\n")


def test_a_module_names_the_packages_its_checks_need(tmp_path):
    from kharness.modconfig import load_config
    from kharness.runner.image import guest_packages
    from kharness.runner.options import RunOptions

    (tmp_path / "kharness.toml").write_text('[guest]\npackages = ["i2c-tools", "python3"]\n')
    cfg = load_config(tmp_path)
    assert cfg.guest_packages == ("i2c-tools", "python3")
    opts = RunOptions(module_dir=tmp_path, guest="debian", guest_packages=("v4l-utils", "python3"))
    assert guest_packages(cfg, opts) == ("i2c-tools", "python3", "v4l-utils")
    for bad, msg in (('[guest]\npackages = "i2c-tools"\n', "list of Debian package names"),
                     ('[guest]\npkgs = []\n', "unknown key")):
        (tmp_path / "kharness.toml").write_text(bad)
        with pytest.raises(UsageError, match=msg):
            load_config(tmp_path)


def test_a_bad_package_in_kharness_toml_is_refused_naming_the_file(tmp_path, cache):
    import subprocess
    import sys

    (tmp_path / "hello.c").write_text("int x;\n")
    (tmp_path / "kharness.toml").write_text('[guest]\npackages = ["i2c-tools", "x;reboot"]\n')
    p = subprocess.run([sys.executable, "-m", "kharness", "run", str(tmp_path), "--guest", "debian"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "[guest] packages: 'x;reboot' is not a Debian package name" in p.stderr
