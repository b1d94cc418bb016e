"""Unit tests for ``kharness doctor``: a fake host (a PATH directory of fake tools, a set of files
that exist, apt sources in a temporary directory), the table, the JSON, the exit status and the
one ``apt-get install`` line; ``--install`` with fake apt-get and sudo that record their argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kharness import doctor, hostarch, hostdeps
from kharness.cli import app
from kharness.debian import mirror

ROOT = Path(__file__).resolve().parents[2]

EVERY_RUN_PACKAGES = ["make", "gcc", "kmod", "qemu-utils", "gpgv", "debian-archive-keyring", "ca-certificates"]
X86_PACKAGES = ["qemu-system-x86", "libc6-dev"]
KERNEL_BUILD_PACKAGES = ["bc", "flex", "bison", "libelf-dev", "libssl-dev", "xz-utils", "lz4"]
BUILD_ENV_PACKAGES = ["mmdebstrap", "bubblewrap", "uidmap"]
DISTRO_PACKAGES = ["e2fsprogs", "util-linux", "dpkg"]   # what distro guests add (mmdebstrap, uidmap, qemu-utils: above)
X86_TOOLS = ["make", "gcc", "depmod", "qemu-img", "gpgv", "qemu-system-x86_64"]
X86_FILES = [hostdeps.DEFAULT_KEYRING, "/etc/ssl/certs/ca-certificates.crt", "/usr/lib/x86_64-linux-gnu/libc.a"]


class FakeHost:
    def __init__(self, tmp_path: Path, monkeypatch):
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.files: set[str] = set()
        self.log = tmp_path / "argv.log"
        self.mp = monkeypatch
        monkeypatch.setenv("PATH", str(self.bin))
        monkeypatch.setattr(doctor, "SBIN", ())
        monkeypatch.setattr(doctor, "_file_exists", lambda p: p in self.files)
        monkeypatch.setattr(hostarch, "machine", lambda: "x86_64")
        monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
        monkeypatch.delenv("KHARNESS_KEYRING", raising=False)
        monkeypatch.setenv("KHARNESS_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv(mirror.ENV_VAR, "http://mirror.example/debian")

    def tools(self, *names: str, script: str = "exit 0") -> None:
        for n in names:
            f = self.bin / n
            f.write_text(f"#!/bin/sh\n{script}\n")
            f.chmod(0o755)

    def x86_64_complete(self) -> None:
        self.tools(*X86_TOOLS)
        self.files.update(X86_FILES)

    def apt_sources(self, name: str, text: str) -> Path:
        apt = self.bin.parent / "apt"
        (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
        (apt / "sources.list.d" / name).write_text(text)
        self.mp.setattr(mirror, "APT_DIR", apt)
        self.mp.delenv(mirror.ENV_VAR)
        return apt


@pytest.fixture
def host(tmp_path, monkeypatch) -> FakeHost:
    return FakeHost(tmp_path, monkeypatch)


def kh(*argv: str, columns: int = 80):
    return CliRunner().invoke(app, list(argv), env={"COLUMNS": str(columns)})


def apt_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "apt-get install" in line and "--install" not in line]


def test_a_bare_host_lacks_everything_and_says_so_in_one_apt_get_line(host):
    r = kh("doctor", "--target", "x86_64")
    assert r.exit_code == 1, r.output
    assert apt_lines(r.output) == ["sudo apt-get install -y --no-install-recommends " + " ".join(
        EVERY_RUN_PACKAGES + X86_PACKAGES + KERNEL_BUILD_PACKAGES + BUILD_ENV_PACKAGES + DISTRO_PACKAGES)]
    assert "missing for x86_64: make, gcc, depmod" in r.output


def test_every_target_s_packages_and_never_a_test_only_one(host):
    report = doctor.examine()
    assert sorted(report.missing_packages) == hostdeps.all_packages()
    assert not {"chromium", "python3-venv", "python3-pip", "gnupg"} & set(report.missing_packages)


def test_as_root_the_line_has_no_sudo(host, monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    assert apt_lines(kh("doctor").output)[0].startswith("apt-get install -y --no-install-recommends make gcc ")


def test_x86_64_complete_exits_0_and_the_rest_is_optional(host):
    host.x86_64_complete()
    r = kh("doctor")
    assert r.exit_code == 0, r.output
    assert "everything x86_64 needs is here" in r.output
    report = doctor.examine()
    status = {c.what: c.status for c in report.checks}
    assert status["qemu-system-x86_64"] == status["make"] == status["static libc (amd64)"] == "ok"
    assert status["aarch64-linux-gnu-gcc"] == status["mmdebstrap"] == status["bc"] == "optional"
    assert status["Debian mirror"] == status["cache directory"] == "ok"
    # what is optional is still offered, in the same one line
    assert "gcc-aarch64-linux-gnu" in apt_lines(r.output)[0] and "qemu-system-x86 " not in apt_lines(r.output)[0]


def test_a_target_asked_for_is_required(host):
    host.x86_64_complete()
    r = kh("doctor", "--target", "x86_64,arm64")
    assert r.exit_code == 1
    assert "missing for x86_64, arm64: qemu-system-aarch64, aarch64-linux-gnu-gcc, static libc (arm64)" in r.output
    assert apt_lines(r.output)[0].endswith("qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross "
                                           + " ".join(KERNEL_BUILD_PACKAGES + BUILD_ENV_PACKAGES + DISTRO_PACKAGES))


def test_ppc64_needs_the_kernel_build_tools(host):
    host.x86_64_complete()
    host.tools("powerpc64-linux-gnu-gcc", "qemu-system-ppc64")
    host.files.add("/usr/powerpc64-linux-gnu/lib/libc.a")
    report = doctor.examine(["ppc64"])
    assert not report.ok
    assert [c.what for c in report.checks if c.required and not c.ok] == [
        "bc", "flex", "bison", "libelf headers", "OpenSSL headers", "xz", "lz4"]


def test_an_ubuntu_host_is_told_what_it_is_and_the_fix(host):
    host.x86_64_complete()
    host.apt_sources("ubuntu.sources", "Types: deb\nURIs: http://mirror.example/ubuntu/\n"
                                       "Suites: noble noble-updates\nComponents: main\n")
    r = kh("doctor", "--json")
    assert r.exit_code == 1
    check = next(c for c in json.loads(r.stdout)["checks"] if c["what"] == "Debian mirror")
    assert check["status"] == "missing" and check["required"] and check["package"] is None
    assert "name no Debian suite, only noble, noble-updates (not a Debian host)" in check["detail"]
    assert "`container: debian:bookworm`" in check["detail"] and "KHARNESS_DEBIAN_MIRROR=" in check["detail"]
    assert json.loads(r.stdout)["install"] is not None   # the optional targets' packages; no fix of the mirror


def test_a_debian_host_s_sources_name_the_mirror(host):
    host.x86_64_complete()
    host.apt_sources("debian.sources", "Types: deb\nURIs: http://mirror.example/debian/\n"
                                       "Suites: bookworm bookworm-updates\nComponents: main\n")
    r = kh("doctor")
    assert r.exit_code == 0
    assert "Debian mirror: http://mirror.example/debian (from the host's apt sources)" in r.output


def test_json_is_the_whole_report(host):
    host.x86_64_complete()
    r = kh("doctor", "--json")
    d = json.loads(r.stdout)
    assert d["ok"] is True and r.exit_code == 0
    assert d["host"] == {"machine": "x86_64", "debian_arch": "amd64"}
    assert d["required_for"] == ["x86_64"] and "arm64" in d["targets"]
    make = next(c for c in d["checks"] if c["what"] == "make")
    assert make == {"what": "make", "status": "ok", "users": ["every run"], "required": True, "package": "make",
                    "detail": str(host.bin / "make"), "ok": True}
    assert d["install"] == "sudo apt-get install -y --no-install-recommends " + " ".join(d["missing_packages"])
    assert {c["what"] for c in d["checks"]} >= {"Debian mirror", "cache directory", "KVM"}


def test_the_table_fits_80_columns(host):
    host.x86_64_complete()
    out = kh("doctor", columns=80).output
    table = out.split("Debian mirror:")[0]   # the lines after it are messages (the apt line stays whole)
    assert max(len(line) for line in table.splitlines()) <= 80
    assert len(table.splitlines()) > 30


def test_the_keyring_kharness_is_told_to_use(host, monkeypatch):
    host.x86_64_complete()
    host.files.discard(hostdeps.DEFAULT_KEYRING)
    monkeypatch.setenv("KHARNESS_KEYRING", "/srv/mirror-keyring.gpg")
    host.files.add("/srv/mirror-keyring.gpg")
    assert kh("doctor").exit_code == 0


def test_an_unwritable_cache_is_missing(host, monkeypatch, tmp_path):
    host.x86_64_complete()
    monkeypatch.setenv("KHARNESS_CACHE", "/proc/kharness-cache")
    report = doctor.examine(["x86_64"])
    cache = next(c for c in report.checks if c.what == "cache directory")
    assert cache.status == "missing" and "KHARNESS_CACHE" in cache.detail and not report.ok


def test_unknown_target_is_a_usage_error(host):
    r = kh("doctor", "--target", "vax")
    assert r.exit_code == 2 and "unknown target 'vax'" in r.output


def test_help_says_what_the_exit_codes_mean():
    out = kh("doctor", "--help", columns=200).output
    assert "Exit 0 when everything the default target (x86_64)" in out and "1 when" in out


# --- --install --------------------------------------------------------------------------------

def test_install_updates_then_installs_exactly_what_is_missing_with_sudo(host):
    host.x86_64_complete()
    host.tools("sudo", script=f'echo "sudo $*" >> {host.log}; exec "$@"')
    host.tools("apt-get", script=f'echo "apt-get $*" >> {host.log}')
    r = kh("doctor", "--install", "--target", "x86_64,rpi2")
    want = ("apt-get install -y --no-install-recommends qemu-system-arm gcc-arm-linux-gnueabihf "
            "libc6-dev-armhf-cross device-tree-compiler " + " ".join(KERNEL_BUILD_PACKAGES + BUILD_ENV_PACKAGES + DISTRO_PACKAGES))
    assert host.log.read_text().splitlines() == ["sudo apt-get update -q", "apt-get update -q",
                                                 f"sudo {want}", want]
    assert r.exit_code == 1   # the fake apt-get installed nothing: checked again, still missing


def test_install_as_root_runs_apt_get_itself(host, monkeypatch):
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    host.x86_64_complete()
    host.tools("apt-get", script=f'echo "apt-get $*" >> {host.log}')
    kh("doctor", "--install")
    assert [line.split()[:2] for line in host.log.read_text().splitlines()] == [["apt-get", "update"],
                                                                               ["apt-get", "install"]]


def test_install_stops_when_apt_get_fails(host):
    host.x86_64_complete()
    host.tools("sudo", script='exec "$@"')
    host.tools("apt-get", script="exit 100")
    r = kh("doctor", "--install")
    assert r.exit_code == 2
    assert "kharness: error: `sudo apt-get update -q` failed (exit 100)" in r.output


def test_install_without_apt_get_says_this_is_no_debian_host(host):
    r = kh("doctor", "--install")
    assert r.exit_code == 2
    assert "kharness: error: apt-get not found: this is not a Debian host" in r.output
    assert "debian:bookworm" in r.output


def test_install_with_nothing_missing_runs_nothing(host, monkeypatch):
    monkeypatch.setattr(doctor.Report, "missing_packages", property(lambda self: []))
    host.tools("apt-get", script=f'echo "apt-get $*" >> {host.log}')
    kh("doctor", "--install")
    assert not host.log.exists()


# --- the one list, shared with the Makefile ---------------------------------------------------

def test_the_package_list_needs_only_the_standard_library():
    # -S: no site-packages (no typer, rich, ...), as for the Makefile before the venv exists
    p = subprocess.run([sys.executable, "-S", "-m", "kharness.hostdeps"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=""))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == hostdeps.all_packages()


def test_the_makefile_installs_that_list_plus_what_developing_kharness_needs():
    text = (ROOT / "Makefile").read_text()
    assert 'PACKAGES="$$($(PYTHON) -m kharness.hostdeps)"' in text
    dev = next(line for line in text.splitlines() if line.startswith("DEV_PACKAGES")).split(":=")[1].split()
    assert "chromium" in dev and not set(dev) & set(hostdeps.all_packages())
