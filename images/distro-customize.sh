#!/bin/sh
# kharness distro-guest customization: run by mmdebstrap (a hook, outside the chroot) on the root
# filesystem it made, before the filesystem is written into an ext4 image.
#
#   distro-customize.sh ROOT CLIENT_PUB HOST_KEY HOST_PUB KEEP_DEBS
#
# Only file operations, no program of the guest runs: the same script serves a root made for a
# foreign architecture, whose packages are unpacked here and configured at its first boot
# (KEEP_DEBS=1: the downloaded packages stay for that boot). What slows a TCG boot and serves no
# test is masked; the network is static (QEMU user-mode networking: 10.0.2.15/24, gateway
# 10.0.2.2), sshd presents kharness's pinned host key and takes kharness's client key for root.
set -eu
root=$1 client_pub=$2 host_key=$3 host_pub=$4 keep_debs=$5

# sshd: only kharness's host key (known in advance, so pinned), root by key only.
mkdir -p "$root/root/.ssh" "$root/etc/ssh/sshd_config.d"
chmod 700 "$root/root/.ssh"
cat "$client_pub" > "$root/root/.ssh/authorized_keys"
chmod 600 "$root/root/.ssh/authorized_keys"
rm -f "$root"/etc/ssh/ssh_host_*_key "$root"/etc/ssh/ssh_host_*_key.pub
cat "$host_key" > "$root/etc/ssh/ssh_host_ed25519_key"
chmod 600 "$root/etc/ssh/ssh_host_ed25519_key"
cat "$host_pub" > "$root/etc/ssh/ssh_host_ed25519_key.pub"
cat > "$root/etc/ssh/sshd_config.d/kharness.conf" <<'EOF'
# kharness: the pinned host key only; root by key only; no reverse lookups (there is no DNS).
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# No PAM session per command: kharness opens an exec channel for every guest step, and PAM's
# session modules (motd, mail, limits, env) cost a third of each one under TCG (measured: ~0.11 s
# a channel with PAM, ~0.08 s without). Key authentication needs no PAM.
UsePAM no
EOF

# -r: sshd serves each connection from a fork instead of re-executing itself (the re-exec gives
# each connection a fresh address-space layout). Under TCG the re-exec is most of a connection's
# cost: measured 0.18 s to the banner and 0.43 s to a session with it, 0.02 s and 0.2 s without;
# every restored run connects once. A test guest on a loopback port can spare that hardening.
# A unit drop-in, not /etc/default/ssh: that is a conffile, and a foreign root's first boot
# (kh-configure.sh) installs the package after this script ran.
mkdir -p "$root/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/sshd -D -r $SSHD_OPTS\n' > "$root/etc/systemd/system/ssh.service.d/kharness.conf"

echo kh-guest > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkh-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# No DNS: the guest's network is restricted to the host's forwarded port (qemu_args).
echo "# kharness: no name server (the guest's network reaches only its forwarded ssh port)" > "$root/etc/resolv.conf"

# Root is the ext4 labelled kh-root, mounted read-write by the initramfs; no fsck (a fresh
# overlay of a sealed image each time). The modules disk is mounted by the initramfs too.
echo "LABEL=kh-root / ext4 rw,noatime 0 0" > "$root/etc/fstab"

# Network: static, no waiting for DHCP or router advertisements.
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/multi-user.target.wants" \
         "$root/etc/systemd/system/sockets.target.wants" "$root/etc/systemd/journald.conf.d" \
         "$root/etc/sysctl.d"
# The card is virtio's (eth0 with net.ifnames=0) or, on a board without PCI, a USB adapter
# (cdc_ether names it usb0).
cat > "$root/etc/systemd/network/10-kharness.network" <<'EOF'
[Match]
Name=e* usb*

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
ln -sf /lib/systemd/system/systemd-networkd.service "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
ln -sf /lib/systemd/system/systemd-networkd.socket "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"

# Masked: logins on the consoles (the serial console carries the kernel log; hvc0 is the busybox
# guest's command channel), periodic maintenance, time sync, waiting for "online".
for u in getty.target getty@.service serial-getty@.service console-getty.service \
         apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
         e2scrub_all.timer e2scrub_all.service e2scrub_reap.service fstrim.timer fstrim.service \
         man-db.timer man-db.service dpkg-db-backup.timer logrotate.timer \
         systemd-timesyncd.service systemd-networkd-wait-online.service \
         systemd-fsck-root.service systemd-firstboot.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done

# The journal in memory (nothing to keep across boots of a throwaway overlay); the kernel log
# keeps going to the console at every level, as in the busybox guest, so an oops is seen there.
printf '[Journal]\nStorage=volatile\nForwardToConsole=no\n' > "$root/etc/systemd/journald.conf.d/kharness.conf"
printf 'kernel.printk = 8 4 1 7\nkernel.sysrq = 1\n' > "$root/etc/sysctl.d/90-kharness.conf"

if [ "$keep_debs" != 1 ]; then
  rm -f "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin
  rm -rf "$root"/var/lib/apt/lists/*
fi
