#!/bin/busybox sh
# kharness guest init: PID 1 of every kharness guest.
#
# The kernel log goes to the console (first serial port); commands travel on a separate
# channel named by `kh_cmd=<tty>` on the kernel command line, so kernel messages can never
# corrupt a command's output. docs/protocol.md specifies both: the command channel's framing
# (run/bye, KH-READY, KHO/KHR/KHE, KH-BYE) and the console side channel (sysrq-, kh-initstate-).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /mnt /root /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t tmpfs -o size=64m tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# Let the host ask for backtraces (sysrq l/w/t) when a command hangs.
echo 1 > /proc/sys/kernel/sysrq
# Everything to the console, so an oops or panic is seen even when the guest is dead.
echo 8 > /proc/sys/kernel/printk

KH_CMD=/dev/console
for w in $(cat /proc/cmdline); do
  case "$w" in
    kh_cmd=*) KH_CMD=/dev/${w#kh_cmd=} ;;
  esac
done

# Kernel modules the board needs for the command channel (from the target profile).
if [ -f /lib/kh-guest/order ]; then
  for m in $(cat /lib/kh-guest/order); do
    insmod "/lib/kh-guest/$m" || echo "kharness: insmod $m failed" > /dev/console
  done
fi
i=0
while [ ! -c "$KH_CMD" ] && [ $i -lt 100 ]; do usleep 50000; i=$((i+1)); done

# Listener on the console port, for when the command channel does not answer: the host writes
# "sysrq-<key>" (diagnostics) or "kh-initstate-<nonce>-<module>" (did its init/exit finish? tells
# a hang from a module that silenced the command channel).
( while IFS= read -r l; do
    case "$l" in
      sysrq-?) echo "${l#sysrq-}" > /proc/sysrq-trigger ;;
      kh-initstate-*)
        q=${l#kh-initstate-}; n=${q#*-}
        echo "kh-initstate ${q%%-*} $n $(cat "/sys/module/$n/initstate" 2>/dev/null || echo gone)" > /dev/console ;;
    esac
  done < /dev/console ) &

KH_MAX=${KH_MAX:-1048576}

kh_emit() {  # tag id file: a size line, then the (capped) content in base64
  if [ ! -s "$3" ]; then  # the common case costs no fork: every fork is slow under TCG
    printf '\036%s %s 0\n' "$1" "$2"
    return
  fi
  printf '\036%s %s %s\n' "$1" "$2" "$(wc -c < "$3")"
  head -c "$KH_MAX" "$3" | base64
}

kh_run_sh() {  # id base64-script [stdin file]: the protocol in shell, for when kh-agent cannot run
  echo "$2" | base64 -d > /tmp/.kh.sh
  ( cd / && exec sh /tmp/.kh.sh ) < "${3:-/dev/null}" > /tmp/.kh.out 2> /tmp/.kh.err
  rc=$?
  kh_emit KHO "$1" /tmp/.kh.out
  kh_emit KHR "$1" /tmp/.kh.err
  printf '\036KHE %s %s\n' "$1" "$rc"
}

kh_run() {  # id base64-script [stdin file]
  # kh-agent does the same in one process (a shell needs half a dozen, slow under TCG).
  kh-agent run "$1" "$2" "$KH_MAX" ${3:+"$3"} && return
  rc=$?
  case $rc in
    126|127) kh_run_sh "$1" "$2" "$3" ;;   # no agent to run: do it in shell
    # The agent was killed (a module killing processes): answer for it, so that the host is
    # never left waiting and sees the signal in the exit status.
    *) printf '\036KHO %s 0\n\036KHR %s 0\n\036KHE %s %s\n' "$1" "$1" "$1" "$rc" ;;
  esac
}

kh_recv() {  # size file
  kh-agent recv "$1" "$2" && return
  rc=$?
  # No agent to run: head reads no further than asked, and the host sends nothing more
  # before this command's answer.
  [ $rc -ge 126 ] && head -c "$1" | base64 -d > "$2"
}

kh_serve() {
  printf '\036KH-READY %s\n' "$(uname -r)"
  while IFS= read -r line; do
    set -- $line
    case "$1" in
      run) kh_run "$2" "$3" ;;
      # put: <size> bytes of base64 follow the line, the command's stdin. kh-agent reads them
      # in large reads (this shell's read takes a byte per system call).
      put) if kh_recv "$3" /tmp/.kh.in; then kh_run "$2" "$4" /tmp/.kh.in; rm -f /tmp/.kh.in
           else printf '\036KHO %s 0\n\036KHR %s 0\n\036KHE %s 125\n' "$2" "$2" "$2"; fi ;;
      bye) printf '\036KH-BYE\n'; sync; poweroff -f ;;
    esac
  done
}

exec < "$KH_CMD" > "$KH_CMD" 2>&1
# Raw, no echo, no CR/LF translation. Set on the open tty: some drivers (hvc) reset the termios
# when the last user closes the device.
stty raw -echo 2>/dev/null
while :; do kh_serve; sleep 1; done
