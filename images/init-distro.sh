#!/bin/busybox sh
# kharness distro-guest init: PID 1 of the initramfs of a distro guest (kharness/image/distro.py).
#
# Loads the kernel modules that reach the disks, mounts the Debian root filesystem (the ext4
# labelled kh-root, read-write: a per-guest qcow2 overlay) and the kernel's module tree (the ext4
# labelled kh-modules, read-only) on its /lib/modules, and hands over to systemd. The kernel log
# stays on the console named by console= (so a panic is seen); this script only writes there
# when something goes wrong.
#
# kh_configure on the kernel command line: the one-time first boot of a root filesystem made for
# a foreign architecture (unpacked, not installed): run the packages' maintainer scripts here,
# then power off (kh-configure.sh on the root disk does the work).
/bin/busybox mkdir -p /proc /sys /dev /newroot /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

fail() {
  echo "kharness: $*" > /dev/console
  poweroff -f
}

# One module a line, "soft" after a soft dependency: it may fail (crc32c-intel without SSE4.2).
while read -r m soft; do
  insmod "/lib/kh-guest/$m" 2>/dev/null || [ -n "$soft" ] || echo "kharness: insmod $m failed" > /dev/console
done < /lib/kh-guest/order

# The disks appear once their driver has probed them: wait (TCG is slow), with a deadline.
find_disk() {
  i=0
  while [ $i -lt 600 ]; do
    d=$(findfs "LABEL=$1" 2>/dev/null) && [ -n "$d" ] && { echo "$d"; return 0; }
    usleep 100000; i=$((i+1))
  done
  return 1
}
ROOT=$(find_disk kh-root) || fail "no disk labelled kh-root within 60 s"
MODS=$(find_disk kh-modules) || fail "no disk labelled kh-modules within 60 s"
mount -t ext4 -o rw,noatime "$ROOT" /newroot || fail "cannot mount $ROOT (kh-root)"

for w in $(cat /proc/cmdline); do
  case "$w" in
    kh_configure)
      # No modules disk here: usrmerge moves /lib into /usr/lib, which a mount point would stop.
      mount --move /dev /newroot/dev
      mount -t proc proc /newroot/proc
      mount -t sysfs sysfs /newroot/sys
      chroot /newroot /bin/sh /kh-configure.sh > /dev/console 2>&1
      echo "kh-configure-exit $?" > /dev/console
      umount /newroot/proc /newroot/sys /newroot/dev
      sync
      umount /newroot
      poweroff -f ;;
  esac
done

# /lib is a link to usr/lib on a merged-/usr root: mkdir and mount follow it inside /newroot.
mkdir -p /newroot/lib/modules
mount -t ext4 -o ro "$MODS" /newroot/lib/modules || fail "cannot mount $MODS (kh-modules)"

umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
