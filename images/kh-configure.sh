#!/bin/sh
# kharness: the one-time first boot of a distro root made for a foreign architecture (run in a
# chroot of the root disk by images/init-distro.sh, kh_configure on the kernel command line).
#
# mmdebstrap only unpacked the packages (--variant=extract): install them here, as its own
# essential step and apt would have on a native host: the Essential set first, then the rest,
# dependencies ignored while both sets go in, then every pending configuration. Then remove
# what only this boot needed. The customizations (distro-customize.sh) are already in place:
# dpkg keeps them (no package ships those files), and sshd keeps kharness's host key.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
cd /var/cache/apt/archives || exit 1
# No service starts while packages install: nothing could use it, and this boot powers off.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
echo "kh-configure: installing the Essential packages"
# --force-confdef/--force-confold and no stdin: a file the customizations put in place before a
# package that ships it as a conffile must never stop this boot at dpkg's question.
DPKG="dpkg --force-confdef --force-confold"
$DPKG --install --force-depends $(cat /kh-essential.list) < /dev/null > /tmp/kh-dpkg.log 2>&1 || tail -5 /tmp/kh-dpkg.log
others=$(for f in *.deb; do grep -qx "$f" /kh-essential.list || echo "$f"; done)
echo "kh-configure: installing the others"
$DPKG --install --force-depends $others < /dev/null > /tmp/kh-dpkg.log 2>&1 || tail -5 /tmp/kh-dpkg.log
$DPKG --configure -a < /dev/null > /tmp/kh-dpkg.log 2>&1
rc=$?
[ $rc -eq 0 ] || tail -20 /tmp/kh-dpkg.log
# Every guest gets a machine-id of its own at its boot; only kharness's host key stays.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_rsa_key* /etc/ssh/ssh_host_ecdsa_key*
rm -f /usr/sbin/policy-rc.d /kh-essential.list /kh-configure.sh /tmp/kh-dpkg.log
rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin
rm -rf /var/lib/apt/lists/*
# What dpkg still lists as not fully installed: the host fails the image on any.
bad=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | grep -v '^ii ' | head -5)
[ -z "$bad" ] || { echo "kh-configure: not installed: $bad"; rc=1; }
sync
exit $rc
