"""A distro guest boots for real: Debian's kernel, the mmdebstrap root filesystem, systemd, udev,
sshd on a forwarded loopback port, reached with paramiko as root with kharness's client key and
the pinned host key (kharness.image.distro, kharness.sshkeys).

x86_64 runs in the integration suite. arm64's root filesystem is made for a foreign architecture
and configured in a first boot under TCG (minutes, once per cache): KH_DISTRO_GRID=1 runs it.
"""

from __future__ import annotations

import base64
import os
import time

import pytest

pytestmark = pytest.mark.vm

SSH_DEADLINE = 600.0   # TCG on a loaded 2-core host; a healthy x86_64 boot answers in ~20 s


def _pin(client, port: int, line: str) -> None:
    """``client`` accepts only the host key ``line`` for 127.0.0.1:port."""
    import paramiko

    kind, b64 = line.split()[:2]
    client.get_host_keys().add(f"[127.0.0.1]:{port}", kind, paramiko.PKey.from_type_string(kind, base64.b64decode(b64)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())


def _connect(guest, port: int, host_key: str, deadline: float):
    """paramiko to 127.0.0.1:port as root, the host key checked against ``host_key`` only;
    retried while sshd is not up yet (the guest checked alive between tries)."""
    import paramiko

    from kharness.sshkeys import client_key

    pkey = paramiko.Ed25519Key.from_private_key_file(str(client_key()[0]))
    last = None
    while time.monotonic() < deadline:
        guest.check_alive()
        client = paramiko.SSHClient()
        _pin(client, port, host_key)
        try:
            client.connect("127.0.0.1", port, username="root", pkey=pkey, timeout=5, banner_timeout=20,
                           auth_timeout=20, allow_agent=False, look_for_keys=False)
            return client
        except paramiko.BadHostKeyException:
            raise
        except (OSError, paramiko.SSHException) as e:   # not up yet: refused, reset, no banner
            last = e
            client.close()
            time.sleep(1.0)
    raise AssertionError(f"sshd did not answer within {SSH_DEADLINE:g}s ({last}):\n{guest.console_text()[-3000:]}")


def _run(client, command: str, timeout: float = 300.0) -> tuple[int, str, str]:
    _, out, err = client.exec_command(command, timeout=timeout)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def _boot_and_check(target: str, tmp_path, probe_module: str) -> None:
    import paramiko

    from kharness.image import distro
    from kharness.plan import plan_guest
    from kharness.sshkeys import client_key
    from kharness.vm.machine import Guest
    from kharness.vm.qemu import BootSpec

    plan = plan_guest(target, "6.1")
    spec, built = plan.resolve()
    kernel, _base, dtb = plan.image(spec, built)
    image = distro.ensure_distro(plan.profile, kernel, distro.suite_for(spec.release), spec=spec)
    port = distro.free_port()
    root = distro.overlay(plan.profile, image.rootfs, tmp_path / "root.qcow2")
    guest = Guest(plan.profile, BootSpec(kernel.kernel, image.initrd, dtb, distro.kernel_append(plan.profile, image)),
                  tmp_path, "tcg", distro.qemu_args(plan.profile, image, root, port))
    # Loopback only: the forward binds 127.0.0.1 and the guest's network is restricted.
    assert f"hostfwd=tcp:127.0.0.1:{port}-:22" in " ".join(guest.argv)
    assert "restrict=on" in " ".join(guest.argv)
    guest.start()
    try:
        start = time.monotonic()
        client = _connect(guest, port, image.host_key, start + SSH_DEADLINE)
        print(f"{target}: ssh answered {time.monotonic() - start:.1f}s after QEMU started")
        try:
            rc, out, err = _run(client, "systemctl is-system-running --wait")
            assert out.strip() == "running", (out, err, _run(client, "systemctl --failed --no-legend")[1])
            rc, out, _ = _run(client, "uname -r")
            assert (rc, out.strip()) == (0, kernel.release)
            # modprobe sees the kernel's whole tree on the modules disk, with its dependencies.
            rc, out, err = _run(client, f"modprobe -n -v {probe_module}")
            assert rc == 0 and f"/lib/modules/{kernel.release}/" in out and out.count("insmod") > 1, (out, err)
            rc, out, _ = _run(client, "udevadm --version")
            assert rc == 0 and out.strip().isdigit()
            rc, out, err = _run(client, "ls /dev/vda /dev/vdb && findmnt -n -o SOURCE,OPTIONS /lib/modules")
            assert rc == 0 and "ro" in out.split()[-1].split(","), (out, err)
            # The image is lean: no downloaded package or package list left in it.
            rc, out, _ = _run(client, "whoami; ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages* 2>/dev/null | wc -l")
            assert out.split() == ["root", "0"], out
        finally:
            client.close()
        # The pin is real: a client expecting another host key is refused.
        other = paramiko.Ed25519Key.from_private_key_file(str(client_key()[0]))
        wrong = paramiko.SSHClient()
        _pin(wrong, port, f"{other.get_name()} {other.get_base64()}")
        with pytest.raises(paramiko.BadHostKeyException):
            wrong.connect("127.0.0.1", port, username="root", pkey=other, timeout=10, banner_timeout=30,
                          allow_agent=False, look_for_keys=False)
        wrong.close()
    finally:
        guest.close()


@pytest.mark.timeout(2400)   # the first build of the root filesystem downloads ~150 packages
def test_x86_64_distro_guest_boots_to_ssh(tmp_path):
    _boot_and_check("x86_64", tmp_path, "vivid")


@pytest.mark.timeout(5400)   # the first boot that configures the foreign root takes minutes under TCG
@pytest.mark.skipif(os.environ.get("KH_DISTRO_GRID") != "1",
                    reason="arm64's foreign root is configured in a first boot under TCG: KH_DISTRO_GRID=1 runs it")
def test_arm64_distro_guest_boots_to_ssh(tmp_path):
    _boot_and_check("arm64", tmp_path, "vivid")
