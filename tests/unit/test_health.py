"""Unit tests for kharness.health: kernel log scanning and taint decoding.

The log fixtures are modelled on what real kernels print (x86_64, arm64, powerpc) for the
kharness fixture modules; line numbers in the assertions are 1-based positions in those texts.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from kharness.health import (
    BLAMED_ONLY,
    KINDS,
    REPORT_LIMIT,
    TAINT_FLAGS,
    TaintFlag,
    decode_taint,
    scan_kernel_log,
    strip_prefix,
    taint_findings,
    taint_string,
)
from kharness.result.finding import Finding


def _log(body: str, t0: float = 5.0, step: float = 0.000213) -> str:
    """Prefix every line of ``body`` with a console timestamp, as the serial console shows it."""
    lines = body.split("\n")
    return "\n".join(f"[{t0 + k * step:12.6f}] {line}" for k, line in enumerate(lines)) + "\n"


def _kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


# --------------------------------------------------------------------------------------------
# Fixtures: kernel logs
# --------------------------------------------------------------------------------------------

# The null-dereference, WARN, panic, soft-lockup, list-corruption and allocation-failure reports of
# every target are recorded logs in tests/data/console/ (checked by test_golden_console.py); the
# hand-written logs here cover what no recording shows (oops then panic, stale frames, ...).
X86_NULL_DEREF = """\
kharness: phase load
init_oops: loading out-of-tree module taints kernel.
init_oops: module verification failed: signature and/or required key missing - tainting kernel
BUG: kernel NULL pointer dereference, address: 0000000000000000
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
PGD 0 P4D 0 
Oops: 0002 [#1] PREEMPT SMP NOPTI
CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:init_oops_init+0x11/0x1000 [init_oops]
Code: Unable to access opcode bytes at 0xffffffffc0356fe7.
RSP: 0018:ffffb3d0c0237c98 EFLAGS: 00010246
RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
RDX: 0000000000000000 RSI: 0000000000000000 RDI: ffffffffc0357030
RBP: ffffffffc0357000 R08: 0000000000000000 R09: 0000000000000000
R10: 0000000000000000 R11: 0000000000000000 R12: ffff9c0c41b4a2a0
R13: ffffb3d0c0237e90 R14: 0000000000000000 R15: ffffffffc0359040
FS:  00007f2c0b5b0740(0000) GS:ffff9c0c7ec00000(0000) knlGS:0000000000000000
CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033
CR2: 0000000000000000 CR3: 0000000002a4e000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 ? __die+0x23/0x70
 ? page_fault_oops+0x17d/0x4c0
 ? exc_page_fault+0x7f/0x180
 ? asm_exc_page_fault+0x26/0x30
 ? init_oops_init+0x11/0x1000 [init_oops]
 ? 0xffffffffc0357000
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x5b/0xc0
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
RIP: 0033:0x7f2c0b6d2559
Code: 08 89 e8 5b 5d c3 66 2e 0f 1f 84 00 00 00 00 00 90 48 89 f8 48 89 f7 48 89 d6 48 89 ca 4d 89 c2 4d 89 c8 4c 8b 4c 24 08 0f 05 <48> 3d 01 f0 ff ff 73 01 c3 48 8b 0d 77 08 0d 00 f7 d8 64 89 01 48
RSP: 002b:00007ffd5c3f0d98 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
RAX: ffffffffffffffda RBX: 000055d0c8f2a7a0 RCX: 00007f2c0b6d2559
 </TASK>
Modules linked in: init_oops(OE+) ext4 crc16 mbcache jbd2 virtio_blk virtio_net net_failover failover virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev virtio virtio_ring
CR2: 0000000000000000
---[ end trace 0000000000000000 ]---
RIP: 0010:init_oops_init+0x11/0x1000 [init_oops]
Code: Unable to access opcode bytes at 0xffffffffc0356fe7.
RSP: 0018:ffffb3d0c0237c98 EFLAGS: 00010246
note: insmod[93] exited with irqs disabled"""

X86_OOPS_PANIC_TAIL = """
Kernel panic - not syncing: Fatal exception
Kernel Offset: 0x3a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
---[ end Kernel panic - not syncing: Fatal exception ]---"""

X86_WARN = """\
kharness: phase load
init_warn: loading out-of-tree module taints kernel.
------------[ cut here ]------------
kharness fixture: deliberate warning
WARNING: CPU: 1 PID: 101 at /tmp/kh/init_warn/init_warn.c:9 init_warn_init+0x15/0x1000 [init_warn]
Modules linked in: init_warn(OE+) ext4 crc16 mbcache jbd2 virtio_blk virtio_net
CPU: 1 PID: 101 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:init_warn_init+0x15/0x1000 [init_warn]
Code: Unable to access opcode bytes at 0xffffffffc0361feb.
RSP: 0018:ffffa1b2c0247c90 EFLAGS: 00010286
RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000027
CR2: 00007f1e2c5a4000 CR3: 0000000002b4e000 CR4: 00000000000006e0
Call Trace:
 <TASK>
 ? __warn+0x7d/0xc0
 ? init_warn_init+0x15/0x1000 [init_warn]
 ? report_bug+0xe2/0x150
 ? handle_bug+0x41/0x70
 ? exc_invalid_op+0x17/0x70
 ? asm_exc_invalid_op+0x16/0x20
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x5b/0xc0
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
 </TASK>
---[ end trace 0000000000000000 ]---
init_warn: still alive after the warning
kharness: phase load done"""

X86_PANIC = """\
kharness: phase load
init_panic: about to panic
Kernel panic - not syncing: kharness fixture: deliberate panic
CPU: 0 PID: 95 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 panic+0x118/0x2ed
 ? 0xffffffffc0360000
 ? stale_helper+0x10/0x40 [stale_mod]
 init_panic_init+0x15/0x1000 [init_panic]
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x5b/0xc0
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
 </TASK>
Kernel Offset: 0x1a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
---[ end Kernel panic - not syncing: kharness fixture: deliberate panic ]---"""

X86_SOFT_LOCKUP = """\
kharness: phase load
watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:93]
Modules linked in: init_spin(OE+) ext4 crc16 mbcache jbd2 virtio_blk virtio_net
CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:init_spin_init+0x8/0x1000 [init_spin]
Code: Unable to access opcode bytes at 0xffffffffc0356fde.
RSP: 0018:ffffb3d0c0237c98 EFLAGS: 00000246
RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
CR2: 00007f2c0b5c1000 CR3: 0000000002a4e000 CR4: 00000000000006f0
Call Trace:
 <TASK>
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x5b/0xc0
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
RIP: 0033:0x7f2c0b6d2559
Code: 08 89 e8 5b 5d c3 66 2e 0f 1f 84 00 00 00 00 00 90 48 89 f8 48 89 f7 48 89 d6 48 89 ca
RSP: 002b:00007ffd5c3f0d98 EFLAGS: 00000246 ORIG_RAX: 0000000000000139
RAX: ffffffffffffffda RBX: 000055d0c8f2a7a0 RCX: 00007f2c0b6d2559
 </TASK>
virtio_net virtio1 enp0s2: renamed from eth0"""

HUNG_TASK = """\
INFO: task insmod:93 blocked for more than 120 seconds.
      Tainted: G           OE      6.1.0-18-amd64 #1 Debian 6.1.76-1
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
task:insmod          state:D stack:0     pid:93    ppid:92     flags:0x00004002
Call Trace:
 <TASK>
 __schedule+0x34d/0x9e0
 schedule+0x5a/0xd0
 schedule_preempt_disabled+0x11/0x20
 __mutex_lock.constprop.0+0x399/0x700
 init_hang_init+0x1e/0x1000 [init_hang]
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x5b/0xc0
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
 </TASK>
kharness: phase load timed out"""

UBSAN_SHIFT = """\
init_ubsan: shifting
================================================================================
UBSAN: shift-out-of-bounds in /tmp/kh/init_ubsan/init_ubsan.c:12:15
shift exponent 64 is too large for 64-bit type 'long long unsigned int'
CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 ubsan_epilogue+0x5/0x40
 __ubsan_handle_shift_out_of_bounds.cold+0x61/0xef
 init_ubsan_init+0x3a/0x1000 [init_ubsan]
 do_one_initcall+0x5b/0x220
 do_init_module+0x4c/0x1f0
 </TASK>
================================================================================
init_ubsan: result 1"""

# /sys/kernel/debug/kmemleak as read by the harness: no timestamps, old and new backtrace styles.
KMEMLEAK_DEBUGFS = """\
unreferenced object 0xffff9c0c42a3b000 (size 1024):
  comm "insmod", pid 93, jiffies 4294893210 (age 40.123s)
  hex dump (first 32 bytes):
    6b 68 61 72 6e 65 73 73 00 00 00 00 00 00 00 00  kharness........
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace:
    [<ffffffff8f2d6e2e>] __kmem_cache_alloc_node+0x1ce/0x2f0
    [<ffffffff8f28b1c5>] kmalloc_trace+0x25/0x90
    [<ffffffffc0357012>] init_leak_init+0x12/0x1000 [init_leak]
    [<ffffffff8f0020ab>] do_one_initcall+0x5b/0x220
unreferenced object 0xffff9c0c42a3c000 (size 64):
  comm "insmod", pid 93, jiffies 4294893211 (age 40.119s)
  hex dump (first 32 bytes):
    6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b 6b a5  kkkkkkkkkkkkkkk.
  backtrace (crc 5c3ee3c7):
    kmalloc_trace+0x25/0x90
    init_leak_init+0x2c/0x1000 [init_leak]
    do_one_initcall+0x5b/0x220
"""

LOCKDEP_CIRCULAR = """\
init_lockdep: taking locks

======================================================
WARNING: possible circular locking dependency detected
6.1.0-18-amd64 #1 Tainted: G           OE     
------------------------------------------------------
insmod/93 is trying to acquire lock:
ffffffffc0359060 (lock_b){+.+.}-{3:3}, at: init_lockdep_init+0x3c/0x1000 [init_lockdep]

but task is already holding lock:
ffffffffc0359040 (lock_a){+.+.}-{3:3}, at: init_lockdep_init+0x30/0x1000 [init_lockdep]

which lock already depends on the new lock.


the existing dependency chain (in reverse order) is:

-> #1 (lock_a){+.+.}-{3:3}:
       __mutex_lock+0x8b/0x8a0
       init_lockdep_init+0x20/0x1000 [init_lockdep]
       do_one_initcall+0x5b/0x220

-> #0 (lock_b){+.+.}-{3:3}:
       __lock_acquire+0x1224/0x1e00
       lock_acquire+0xc2/0x2b0
       __mutex_lock+0x8b/0x8a0
       init_lockdep_init+0x3c/0x1000 [init_lockdep]

other info that might help us debug this:

 Possible unsafe locking scenario:

       CPU0                    CPU1
       ----                    ----
  lock(lock_a);
                               lock(lock_b);
                               lock(lock_a);
  lock(lock_b);

 *** DEADLOCK ***

1 lock held by insmod/93:
 #0: ffffffffc0359040 (lock_a){+.+.}-{3:3}, at: init_lockdep_init+0x30/0x1000 [init_lockdep]

stack backtrace:
CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x5b/0x77
 check_noncircular+0xfe/0x110
 __lock_acquire+0x1224/0x1e00
 lock_acquire+0xc2/0x2b0
 __mutex_lock+0x8b/0x8a0
 init_lockdep_init+0x3c/0x1000 [init_lockdep]
 do_one_initcall+0x5b/0x220
 </TASK>
init_lockdep: done"""

KASAN_OOB = """\
==================================================================
BUG: KASAN: slab-out-of-bounds in init_kasan_init+0x5e/0x1000 [init_kasan]
Write of size 1 at addr ffff888003c1e0c8 by task insmod/93

CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 print_report+0x184/0x4be
 kasan_report+0xc5/0x100
 init_kasan_init+0x5e/0x1000 [init_kasan]
 do_one_initcall+0x5b/0x220
 </TASK>

Allocated by task 93:
 kasan_save_stack+0x1e/0x40
 __kasan_kmalloc+0x7f/0x90
 init_kasan_init+0x3b/0x1000 [init_kasan]

The buggy address belongs to the object at ffff888003c1e080
 which belongs to the cache kmalloc-64 of size 64
The buggy address is located 8 bytes to the right of
 64-byte region [ffff888003c1e080, ffff888003c1e0c0)

Memory state around the buggy address:
 ffff888003c1df80: fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc fc
>ffff888003c1e080: 00 00 00 00 00 00 00 00 fc fc fc fc fc fc fc fc
                                              ^
==================================================================
Disabling lock debugging due to kernel taint"""

CLEAN_BOOT = """\
Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
Command line: console=ttyS0 panic=-1 oops=panic softlockup_panic=1
x86/fpu: x87 FPU will use FXSAVE
Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on, data leaks possible via Spectre v2 BHB attacks!
RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!
rcu: Preemptible hierarchical RCU implementation.
rcu: 	RCU restricting CPUs from NR_CPUS=8192 to nr_cpu_ids=2.
kmemleak: Kernel memory leak detector initialized (mem pool available: 15842)
NMI watchdog: Perf NMI watchdog permanently disabled
watchdog: Disabling watchdog on nohz_full cores by default
Freeing unused kernel image (initmem) memory: 2736K
Run /init as init process
kharness: phase boot done
kharness: phase load
hello: loading out-of-tree module taints kernel.
hello: module verification failed: signature and/or required key missing - tainting kernel
hello: init, BUG count is 0
Disabling lock debugging due to kernel taint
traps: a.out[150] general protection fault ip:401126 sp:7ffc2d3ef8d0 error:0 in a.out[401000+1000]
a.out[151]: segfault at 0 ip 0000000000401136 sp 00007ffc2d3ef8d0 error 6 in a.out[401000+1000] likely on CPU 0 (core 0, socket 0)
Code: 00 00 00 00 00 55 48 89 e5 b8 00 00 00 00 c7 00 2a 00 00 00 <90> 5d c3
kharness: phase check
kharness: Oops: 0002 [#1] is what a check would look for
kharness: phase unload
hello: exit
kharness: phase unload done"""


# --------------------------------------------------------------------------------------------
# strip_prefix
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("[   12.345678] BUG: kernel NULL pointer dereference, address: 0000000000000000",
         "BUG: kernel NULL pointer dereference, address: 0000000000000000"),
        ("<4>[    1.0] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2",
         "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"),
        ("<1>BUG: unable to handle page fault for address: ffffc90000000000",
         "BUG: unable to handle page fault for address: ffffc90000000000"),
        ("[   12.345678][  T123] Oops: 0002 [#1] SMP", "Oops: 0002 [#1] SMP"),
        ("[   12.345678][    C0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
         "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
        ("kern  :warn  : [   12.345678] ------------[ cut here ]------------",
         "------------[ cut here ]------------"),
        ("kern  :emerg : Kernel panic - not syncing: x", "Kernel panic - not syncing: x"),
        # The frame's own leading space is part of the message and must survive.
        ("[   12.345678]  do_one_initcall+0x5b/0x220", " do_one_initcall+0x5b/0x220"),
        ("6,339,5140900,-;hello: init", "hello: init"),
        ("[Mon Nov 24 00:21:00 2025] hello: init", "hello: init"),
        ("Nov 24 00:21:00 vm kernel: [    5.000000] hello: init", "hello: init"),
        ("[0000000000000000] pgd=0000000000000000", "[0000000000000000] pgd=0000000000000000"),
        ("plain message", "plain message"),
        ("[    5.000000] ", ""),
        ("[    5.000000] serial line\r", "serial line"),
    ],
)
def test_strip_prefix(line: str, expected: str) -> None:
    assert strip_prefix(line) == expected


# --------------------------------------------------------------------------------------------
# scan_kernel_log: one report per fixture
# --------------------------------------------------------------------------------------------


def test_x86_null_deref_is_one_finding_with_module_and_full_report() -> None:
    findings = scan_kernel_log(_log(X86_NULL_DEREF))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "null_deref"
    assert f.summary == "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    assert f.line == 4
    assert f.module == "init_oops"
    lines = f.report.split("\n")
    # Original lines, timestamps included, from the headline through the end marker.
    assert re.fullmatch(r"\[ *\d+\.\d{6}\] BUG: kernel NULL pointer dereference, .*", lines[0])
    assert lines[-1].endswith("---[ end trace 0000000000000000 ]---")
    assert len(lines) == 39
    assert "Oops: 0002 [#1] PREEMPT SMP NOPTI" in f.report
    assert " do_one_initcall+0x5b/0x220" in f.report
    assert "tainting kernel" not in f.report
    assert "note: insmod[93] exited" not in f.report


def test_oops_that_panics_gives_oops_then_panic() -> None:
    findings = scan_kernel_log(_log(X86_NULL_DEREF + X86_OOPS_PANIC_TAIL))
    assert _kinds(findings) == ["null_deref", "panic"]
    oops, panic = findings
    assert oops.line == 4
    assert panic.summary == "Kernel panic - not syncing: Fatal exception"
    assert panic.line == 47
    assert panic.module is None
    assert panic.report.split("\n")[-1].endswith(
        "---[ end Kernel panic - not syncing: Fatal exception ]---"
    )
    assert "BUG: kernel NULL" not in panic.report


def test_panic_from_module() -> None:
    findings = scan_kernel_log(_log(X86_PANIC))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "panic"
    assert f.summary == "Kernel panic - not syncing: kharness fixture: deliberate panic"
    assert f.line == 3
    # No faulting IP in a panic: the module comes from the first reliable frame in the trace
    # ("? " frames are stack leftovers the unwinder could not vouch for).
    assert f.module == "init_panic"
    assert f.report.split("\n")[-1].endswith(
        "---[ end Kernel panic - not syncing: kharness fixture: deliberate panic ]---"
    )


def test_soft_lockup_ends_after_call_trace() -> None:
    findings = scan_kernel_log(_log(X86_SOFT_LOCKUP))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "soft_lockup"
    assert f.summary == "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [insmod:93]"
    assert f.line == 2
    assert f.module == "init_spin"
    lines = f.report.split("\n")
    # The user-space registers inside <TASK> belong to the trace; the next ordinary line does not.
    assert lines[-1].endswith(" </TASK>")
    assert "RIP: 0033:0x7f2c0b6d2559" in f.report
    assert "renamed from eth0" not in f.report


def test_hung_task() -> None:
    findings = scan_kernel_log(_log(HUNG_TASK))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "hung_task"
    assert f.summary == "INFO: task insmod:93 blocked for more than 120 seconds."
    assert f.line == 1
    assert f.module == "init_hang"
    assert f.report.split("\n")[-1].endswith(" </TASK>")
    assert "kharness:" not in f.report


def test_ubsan_block_between_fences() -> None:
    findings = scan_kernel_log(_log(UBSAN_SHIFT))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "ubsan"
    assert f.summary == "UBSAN: shift-out-of-bounds in /tmp/kh/init_ubsan/init_ubsan.c:12:15"
    assert f.line == 3
    assert f.module == "init_ubsan"
    lines = f.report.split("\n")
    assert lines[0].endswith("=" * 80) and lines[-1].endswith("=" * 80)
    assert len(lines) == 15
    assert "shift exponent 64 is too large" in f.report
    assert "result 1" not in f.report


def test_ubsan_in_cut_here_block() -> None:
    # Since 6.5 UBSAN reports like a WARN: cut-here line, headline, trace, end-trace marker.
    log = _log(
        "------------[ cut here ]------------\n"
        "UBSAN: array-index-out-of-bounds in /tmp/kh/init_ubsan/init_ubsan.c:20:9\n"
        "index 8 is out of range for type 'int [8]'\n"
        "CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.8.0 #1\n"
        "Call Trace:\n"
        " <TASK>\n"
        " __ubsan_handle_out_of_bounds+0xc6/0x100\n"
        " init_ubsan_init+0x4a/0x1000 [init_ubsan]\n"
        " </TASK>\n"
        "---[ end trace 0000000000000000 ]---\n"
        "init_ubsan: after"
    )
    findings = scan_kernel_log(log)
    assert [(f.kind, f.line, f.module) for f in findings] == [("ubsan", 2, "init_ubsan")]
    assert findings[0].report.split("\n")[-1].endswith("---[ end trace 0000000000000000 ]---")


def test_kmemleak_debugfs_records() -> None:
    findings = scan_kernel_log(KMEMLEAK_DEBUGFS)
    assert [(f.kind, f.line, f.module) for f in findings] == [
        ("kmemleak", 1, "init_leak"),
        ("kmemleak", 11, "init_leak"),
    ]
    first, second = findings
    assert first.summary == "unreferenced object 0xffff9c0c42a3b000 (size 1024):"
    assert first.report == "\n".join(KMEMLEAK_DEBUGFS.split("\n")[0:10])
    assert second.report.split("\n")[-1] == "    do_one_initcall+0x5b/0x220"


def test_kmemleak_count_line_in_kernel_log() -> None:
    log = _log(
        "kharness: phase unload\n"
        "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n"
        "kharness: phase unload done"
    )
    findings = scan_kernel_log(log)
    assert len(findings) == 1
    assert findings[0].kind == "kmemleak"
    assert findings[0].line == 2
    assert findings[0].summary == (
        "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"
    )
    assert findings[0].report.count("\n") == 0


def test_lockdep_circular_report() -> None:
    findings = scan_kernel_log(_log(LOCKDEP_CIRCULAR))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "lockdep"
    assert f.summary == "WARNING: possible circular locking dependency detected"
    assert f.line == 4
    assert f.module == "init_lockdep"
    lines = f.report.split("\n")
    assert lines[0].endswith("=" * 54)
    assert lines[-1].endswith(" </TASK>")
    assert "*** DEADLOCK ***" in f.report
    assert "init_lockdep: done" not in f.report


def test_kasan_report_ends_at_closing_fence() -> None:
    findings = scan_kernel_log(_log(KASAN_OOB))
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "kasan"
    assert f.summary == "BUG: KASAN: slab-out-of-bounds in init_kasan_init+0x5e/0x1000 [init_kasan]"
    assert f.line == 2
    assert f.module == "init_kasan"
    assert "Allocated by task 93:" in f.report
    assert f.report.split("\n")[-1].endswith("=" * 66)
    assert "Disabling lock debugging" not in f.report


def test_fenced_report_without_known_end_closes_at_fence() -> None:
    # KMSAN has no rule of its own: it is a generic "BUG: " report, fenced by ==== lines.
    # The closing fence belongs to it; the KASAN fence that opens the next report does not.
    body = (
        "=====================================================\n"
        "BUG: KMSAN: uninit-value in init_kmsan_init+0x4c/0x1000 [init_kmsan]\n"
        " init_kmsan_init+0x4c/0x1000 [init_kmsan]\n"
        " do_one_initcall+0x5b/0x220\n"
        "=====================================================\n"
        "BUG: Bad rss-counter state mm:000000002b5e2f3c type:MM_ANONPAGES val:1\n"
        "==================================================================\n"
        "BUG: KASAN: use-after-free in init_kmsan_exit+0x10/0x20 [init_kmsan]\n"
        "==================================================================\n"
    )
    findings = scan_kernel_log(_log(body))
    assert [(f.kind, f.line) for f in findings] == [("bug", 2), ("bug", 6), ("kasan", 8)]
    first, second, third = (f.report.split("\n") for f in findings)
    assert len(first) == 5 and first[-1].endswith("=" * 53)
    assert len(second) == 1
    assert len(third) == 3 and third[0].endswith("=" * 66)


@pytest.mark.parametrize(
    ("body", "kind", "summary", "module"),
    [
        (
            "BUG: soft lockup - CPU#0 stuck for 22s! [insmod:93]\n"
            "pc : init_spin_init+0x10/0x1000 [init_spin]\n"
            "Call trace:\n"
            "  init_spin_init+0x10/0x1000 [init_spin]\n"
            "  do_one_initcall+0x60/0x290\n"
            "after",
            "soft_lockup",
            "BUG: soft lockup - CPU#0 stuck for 22s! [insmod:93]",
            "init_spin",
        ),
        (
            # A lockdep kernel prints where irqs were last toggled before the registers; the
            # faulting RIP, not the first [module] in the text, names the culprit.
            "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [insmod:97]\n"
            "Modules linked in: init_spin(OE+) kh_helper(OE)\n"
            "irq event stamp: 11242\n"
            "hardirqs last  enabled at (11241): [<ffffffffc0361010>] kh_lock_helper+0x10/0x30 "
            "[kh_helper]\n"
            "hardirqs last disabled at (11242): [<ffffffff8f9a2f21>] "
            "sysvec_apic_timer_interrupt+0x11/0xb0\n"
            "CPU: 1 PID: 97 Comm: insmod Tainted: G           OE      6.1.0-18-amd64 #1\n"
            "RIP: 0010:init_spin_init+0x8/0x1000 [init_spin]\n"
            "Call Trace:\n"
            " <TASK>\n"
            " do_one_initcall+0x5b/0x220\n"
            " </TASK>\n"
            "after",
            "soft_lockup",
            "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [insmod:97]",
            "init_spin",
        ),
        (
            # A WARN in core code called by the module: neither RIP nor the headline names a
            # module, the first reliable frame does.
            "------------[ cut here ]------------\n"
            "refcount_t: underflow; use-after-free.\n"
            "WARNING: CPU: 0 PID: 99 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110\n"
            "RIP: 0010:refcount_warn_saturate+0xba/0x110\n"
            "Call Trace:\n"
            " <TASK>\n"
            " ? __warn+0x7d/0xc0\n"
            " init_ref_exit+0x10/0x20 [init_ref]\n"
            " __do_sys_delete_module+0x1b1/0x2d0\n"
            " </TASK>\n"
            "---[ end trace 0000000000000000 ]---\n"
            "after",
            "warning",
            "WARNING: CPU: 0 PID: 99 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110",
            "init_ref",
        ),
        (
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1\n"
            "RIP: 0010:init_irq_init+0x20/0x1000 [init_irq]\n"
            "Call Trace:\n"
            " <TASK>\n"
            " do_one_initcall+0x5b/0x220\n"
            " </TASK>\n"
            "after",
            "hard_lockup",
            "NMI watchdog: Watchdog detected hard LOCKUP on cpu 1",
            "init_irq",
        ),
        (
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n"
            "rcu: \t0-...!: (1 GPs behind) idle=b4c/1/0x4000000000000000 softirq=1021/1022 fqs=0\n"
            "\t(detected by 1, t=21002 jiffies, g=1593, q=230 ncpus=2)\n"
            "NMI backtrace for cpu 0\n"
            "RIP: 0010:init_spin_init+0x8/0x1000 [init_spin]\n"
            "Call Trace:\n"
            " <TASK>\n"
            " do_one_initcall+0x5b/0x220\n"
            " </TASK>\n"
            "rcu: rcu_preempt kthread starved for 21003 jiffies!",
            "rcu_stall",
            "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
            "init_spin",
        ),
        (
            "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580\n"
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 93, name: insmod\n"
            "preempt_count: 1, expected: 0\n"
            "Preemption disabled at:\n"
            "[<ffffffffc0357015>] init_sleep_init+0x15/0x1000 [init_sleep]\n"
            "Call Trace:\n"
            " <TASK>\n"
            " __might_resched.cold+0xcc/0xdf\n"
            " </TASK>\n"
            "after",
            "might_sleep",
            "BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
            "init_sleep",
        ),
        (
            "BUG: scheduling while atomic: insmod/93/0x00000002\n"
            "Modules linked in: init_atomic(OE+) ext4\n"
            "Call Trace:\n"
            " <TASK>\n"
            " __schedule_bug.cold+0x4f/0x61\n"
            " init_atomic_init+0x22/0x1000 [init_atomic]\n"
            " </TASK>\n"
            "after",
            "bug",
            "BUG: scheduling while atomic: insmod/93/0x00000002",
            "init_atomic",
        ),
        (
            "------------[ cut here ]------------\n"
            "kernel BUG at /tmp/kh/init_bug/init_bug.c:9!\n"
            "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n"
            "RIP: 0010:init_bug_init+0x5/0x1000 [init_bug]\n"
            "---[ end trace 0000000000000000 ]---\n"
            "after",
            "bug",
            "kernel BUG at /tmp/kh/init_bug/init_bug.c:9!",
            "init_bug",
        ),
        (
            "general protection fault, probably for non-canonical address 0xdead000000000122: "
            "0000 [#1] PREEMPT SMP NOPTI\n"
            "RIP: 0010:init_gpf_init+0x9/0x1000 [init_gpf]\n"
            "---[ end trace 0000000000000000 ]---",
            "gpf",
            "general protection fault, probably for non-canonical address 0xdead000000000122: "
            "0000 [#1] PREEMPT SMP NOPTI",
            "init_gpf",
        ),
        (
            "BUG: unable to handle page fault for address: ffffc90000400000\n"
            "#PF: supervisor read access in kernel mode\n"
            "Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
            "RIP: 0010:init_pf_init+0x9/0x1000 [init_pf]\n"
            "---[ end trace 0000000000000000 ]---",
            "oops",
            "BUG: unable to handle page fault for address: ffffc90000400000",
            "init_pf",
        ),
        (
            "Oops: 0002 [#1] PREEMPT SMP NOPTI\n"
            "RIP: 0010:init_x_init+0x9/0x1000 [init_x]\n"
            "---[ end trace 0000000000000000 ]---",
            "oops",
            "Oops: 0002 [#1] PREEMPT SMP NOPTI",
            "init_x",
        ),
        (
            "==================================================================\n"
            "BUG: KFENCE: use-after-free read in init_uaf_init+0x2a/0x1000 [init_uaf]\n"
            "\n"
            "Use-after-free read at 0x000000003cf9a41d (in kfence-#72):\n"
            " init_uaf_init+0x2a/0x1000 [init_uaf]\n"
            "==================================================================\n"
            "after",
            "kfence",
            "BUG: KFENCE: use-after-free read in init_uaf_init+0x2a/0x1000 [init_uaf]",
            "init_uaf",
        ),
    ],
)
def test_headline_kinds(body: str, kind: str, summary: str, module: str) -> None:
    findings = scan_kernel_log(_log(body))
    assert [(f.kind, f.summary, f.module) for f in findings] == [(kind, summary, module)]
    assert "after" not in findings[0].report.split("\n")[-1]


def test_clean_boot_log_has_no_findings() -> None:
    assert scan_kernel_log(_log(CLEAN_BOOT)) == []
    assert scan_kernel_log("") == []


def test_dmesg_raw_prefixes() -> None:
    # `dmesg -r`: every line carries its "<level>" and a timestamp.
    log = "\n".join(
        f"<{level}>[    1.{k}] {msg}"
        for k, (level, msg) in enumerate(
            [
                (6, "kharness: phase load"),
                (4, "------------[ cut here ]------------"),
                (4, "WARNING: CPU: 0 PID: 93 at x.c:3 init_warn_init+0x9/0x1000 [init_warn]"),
                (4, "Call Trace:"),
                (4, " <TASK>"),
                (4, " do_one_initcall+0x5b/0x220"),
                (4, " </TASK>"),
                (4, "---[ end trace 0000000000000000 ]---"),
                (1, "BUG: kernel NULL pointer dereference, address: 0000000000000008"),
                (1, "#PF: supervisor read access in kernel mode"),
                (4, "Oops: 0000 [#2] PREEMPT SMP NOPTI"),
                (4, "RIP: 0010:init_warn_exit+0x4/0x10 [init_warn]"),
                (4, "---[ end trace 0000000000000000 ]---"),
                (0, "Kernel panic - not syncing: Fatal exception"),
            ]
        )
    )
    findings = scan_kernel_log(log)
    assert [(f.kind, f.line, f.module) for f in findings] == [
        ("warning", 3, "init_warn"),
        ("null_deref", 9, "init_warn"),
        ("panic", 14, None),
    ]
    assert findings[0].report.startswith("<4>[    1.1] ------------[ cut here ]")
    assert findings[1].summary == "BUG: kernel NULL pointer dereference, address: 0000000000000008"


def test_dmesg_x_and_caller_id_prefixes() -> None:
    log = (
        "kern  :info  : [    5.000000] hello: init\n"
        "kern  :alert : [    5.100000] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
        "kern  :warn  : [    5.100100] Oops: 0002 [#1] PREEMPT SMP NOPTI\n"
        "kern  :warn  : [    5.100200] RIP: 0010:init_oops_init+0x11/0x1000 [init_oops]\n"
        "kern  :warn  : [    5.100300] ---[ end trace 0000000000000000 ]---\n"
        "[    6.000000][  T101] ------------[ cut here ]------------\n"
        "[    6.000100][  T101] WARNING: CPU: 1 PID: 101 at y.c:2 f+0x1/0x2 [other_mod]\n"
        "[    6.000200][  T101] ---[ end trace 0000000000000000 ]---\n"
    )
    findings = scan_kernel_log(log)
    assert [(f.kind, f.line, f.module) for f in findings] == [
        ("null_deref", 2, "init_oops"),
        ("warning", 7, "other_mod"),
    ]


def test_several_reports_in_order() -> None:
    text = "\n".join(
        [X86_WARN, HUNG_TASK, UBSAN_SHIFT, X86_NULL_DEREF + X86_OOPS_PANIC_TAIL]
    )
    findings = scan_kernel_log(_log(text))
    assert [(f.kind, f.line) for f in findings] == [
        ("warning", 5),
        ("hung_task", 31),
        ("ubsan", 51),
        ("null_deref", 69),
        ("panic", 112),
    ]
    assert [f.module for f in findings] == [
        "init_warn", "init_hang", "init_ubsan", "init_oops", None,
    ]


def test_stray_die_line_after_a_fault_block_is_its_own_oops() -> None:
    # A second oops ("[#2]") while the first is being reported is a second finding, not part
    # of the first: only one die line is folded into a fault's block.
    body = (
        "BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
        "Oops: 0002 [#1] PREEMPT SMP NOPTI\n"
        "RIP: 0010:init_oops_init+0x11/0x1000 [init_oops]\n"
        "Oops: 0000 [#2] PREEMPT SMP NOPTI\n"
        "RIP: 0010:other_fn+0x1/0x10\n"
        "---[ end trace 0000000000000000 ]---"
    )
    findings = scan_kernel_log(_log(body))
    assert [(f.kind, f.line, f.module) for f in findings] == [
        ("null_deref", 1, "init_oops"),
        ("oops", 4, None),
    ]


def test_report_is_capped_with_truncation_marker() -> None:
    frames = [f" kharness_fixture_deep_recursion_{k:04d}+0x10/0x20" for k in range(600)]
    block = [
        "------------[ cut here ]------------",
        "WARNING: CPU: 0 PID: 93 at big.c:1 init_big_init+0x1/0x1000 [init_big]",
        "Call Trace:",
        " <TASK>",
        *frames,
        " </TASK>",
        "---[ end trace 0000000000000000 ]---",
    ]
    full = "\n".join(block)
    assert len(full.encode()) > REPORT_LIMIT
    findings = scan_kernel_log(full + "\nafter the report\n")
    assert len(findings) == 1
    f = findings[0]
    assert f.kind == "warning" and f.line == 2 and f.module == "init_big"
    assert len(f.report.encode()) <= REPORT_LIMIT
    match = re.search(r"\n\[\.\.\. truncated (\d+) bytes \.\.\.\]\n", f.report)
    assert match is not None
    head, tail = f.report[: match.start()], f.report[match.end() :]
    # The head keeps the headline, the tail keeps the end marker, and N is exactly what was cut.
    assert full.startswith(head) and full.endswith(tail)
    assert head.split("\n")[1].startswith("WARNING: CPU: 0 PID: 93")
    assert tail.endswith("---[ end trace 0000000000000000 ]---")
    assert len(head) + len(tail) + int(match.group(1)) == len(full)


def test_report_under_the_cap_is_untouched() -> None:
    f = scan_kernel_log(_log(X86_WARN))[0]
    assert "truncated" not in f.report
    expected = _log(X86_WARN).split("\n")[2:28]
    assert f.report == "\n".join(expected)


# --------------------------------------------------------------------------------------------
# Finding
# --------------------------------------------------------------------------------------------


def test_finding_to_dict_and_frozen() -> None:
    f = Finding(kind="oops", summary="Oops: 0002 [#1]", report="r", line=3, module="m")
    assert f.to_dict() == {
        "kind": "oops",
        "summary": "Oops: 0002 [#1]",
        "report": "r",
        "line": 3,
        "module": "m",
    }
    assert Finding("bug", "s", "r", 1).module is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.kind = "bug"  # type: ignore[misc]


def test_finding_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        Finding(kind="explosion", summary="s", report="r", line=1)
    assert len(KINDS) == 19 and "null_deref" in KINDS and "taint" in KINDS
    assert {"oom", "alloc_failure"} <= set(KINDS) and BLAMED_ONLY <= set(KINDS)


# --------------------------------------------------------------------------------------------
# Reports that used to be missed (issue 13, item 11); recorded logs: test_golden_console.py
# --------------------------------------------------------------------------------------------

NONSTATIC_KEY = """\
INFO: trying to register non-static key.
The code is fine but needs lockdep annotation, or maybe
you didn't initialize this object before use?
turning off the locking correctness validator.
CPU: 0 PID: 108 Comm: insmod Tainted: G           O       6.1.176-khdebug #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x5b/0x77
 register_lock_class+0x4a9/0x4b0
 _raw_spin_lock+0x2f/0x40
 ? uninit_lock_init+0x3d/0x1000 [uninit_lock]
 uninit_lock_init+0x3d/0x1000 [uninit_lock]
 do_one_initcall+0x6d/0x2f0
 </TASK>
uninit_lock: done"""


def test_lockdep_non_static_key() -> None:
    [f] = scan_kernel_log(_log(NONSTATIC_KEY))
    assert (f.kind, f.line, f.module) == ("lockdep", 1, "uninit_lock")
    assert "turning off the locking correctness validator." in f.report and "done" not in f.report


@pytest.mark.parametrize("headline", [
    "watchdog: CPU 1 self-detected hard LOCKUP @ hardlock_init+0x40/0x1000 [hardlock]",
    "watchdog: CPU 0 detected hard LOCKUP on other CPUs 1-3",
    "CPU 12 detected hard LOCKUP on other CPUs 4,7",
])
def test_powerpc_watchdog_hard_lockups(headline: str) -> None:
    text = "\n".join([headline, "watchdog: CPU 1 Hard LOCKUP", "Modules linked in: hardlock(OE+)",
                      "NIP [c00800000a1f0048] hardlock_init+0x48/0x1000 [hardlock]", "Call Trace:",
                      "[c00000000a59fab0] [c000000000012854] do_one_initcall+0x64/0x2d0",
                      "Instruction dump:"])
    [f] = scan_kernel_log(_log(text))
    assert (f.kind, f.summary, f.module) == ("hard_lockup", headline, "hardlock")
    assert "Instruction dump:" not in f.report


def test_powerpc_watchdog_needs_the_kernels_words() -> None:
    # The stuck CPU's own line belongs to the detecting CPU's report; alone it is not a headline,
    # and a module's message that merely mentions a lockup is nothing.
    assert scan_kernel_log(_log("watchdog: CPU 1 Hard LOCKUP\nmymod: CPU 1 self-detected hard LOCKUP")) == []


OOM = """\
hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
CPU: 0 PID: 93 Comm: insmod Tainted: G           OE      6.1.0-50-amd64 #1  Debian 6.1.176-1
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 dump_header+0x4c/0x22b
 out_of_memory+0x1fd/0x4c0
 __alloc_pages+0x305/0x330
 hog_init+0x2a/0x1000 [hog]
 </TASK>
Mem-Info:
active_anon:652 inactive_anon:45116 isolated_anon:0
 active_file:0 inactive_file:0 isolated_file:0
Tasks state (memory values in pages):
[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[     93]     0    93      565       19    28672        0             0 insmod
oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=insmod,pid=93,uid=0
Out of memory: Killed process 93 (insmod) total-vm:2260kB, anon-rss:76kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:28kB oom_score_adj:0
hog: after the kill"""


def test_oom_is_one_report_from_invocation_to_kill() -> None:
    [f] = scan_kernel_log(_log(OOM))
    assert (f.kind, f.line, f.module) == ("oom", 1, "hog")
    assert f.report.rstrip().endswith("oom_score_adj:0") and "after the kill" not in f.report


@pytest.mark.parametrize("line", [
    "Out of memory: Killed process 93 (insmod) total-vm:2260kB, anon-rss:76kB",
    "Memory cgroup out of memory: Killed process 93 (insmod) total-vm:2260kB",
    "Out of memory (oom_kill_allocating_task): Killed process 93 (insmod) total-vm:2260kB",
])
def test_an_oom_kill_line_alone_is_an_oom_report(line: str) -> None:
    assert _kinds(scan_kernel_log(_log(line))) == ["oom"]


def test_page_allocation_failure_names_the_allocating_module() -> None:
    text = "\n".join([
        "insmod: page allocation failure: order:10, mode:0x40cc0(GFP_KERNEL|__GFP_COMP), "
        "nodemask=(null),cpuset=/,mems_allowed=0",
        "CPU: 0 PID: 105 Comm: insmod Tainted: G           OE      6.1.0-50-amd64 #1  Debian 6.1.176-1",
        "Call Trace:", " <TASK>", " dump_stack_lvl+0x44/0x5c", " warn_alloc+0x151/0x170",
        " ? alloc_fail_init+0x17/0x1000 [not_this_one]", " kmalloc_large+0x19/0xa0",
        " alloc_fail_init+0x17/0x1000 [alloc_fail]", " do_one_initcall+0x59/0x220", " </TASK>",
        "Mem-Info:", "active_anon:633 inactive_anon:124 isolated_anon:0"])
    [f] = scan_kernel_log(_log(text))
    assert (f.kind, f.module) == ("alloc_failure", "alloc_fail")
    assert "Mem-Info:" not in f.report
    assert "alloc_failure" in BLAMED_ONLY and "oom" not in BLAMED_ONLY


@pytest.mark.parametrize("message", [
    "list_del corruption, ffff888006a3c000->next is LIST_POISON1 (dead000000000100)",
    "list_del corruption. prev->next should be ffff888006a3c000, but was 0000000000000000. (prev=ffff888006a3c040)",
    "list_add corruption. next->prev should be prev (ffff888006a3c040), but was ffff888006a3c000. (next=ffff888006a3c080).",
])
def test_data_corruption_line_before_cut_here_heads_the_bug_report(message: str) -> None:
    text = "\n".join(["mymod: removing", message, "------------[ cut here ]------------",
                      "kernel BUG at lib/list_debug.c:56!", "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI",
                      "RIP: 0010:__list_del_entry_valid.cold+0x5c/0x6f", "Call Trace:", " <TASK>",
                      " mymod_remove+0x11/0x20 [mymod]", " </TASK>", "---[ end trace 0000000000000000 ]---",
                      "mymod: after"])
    [f] = scan_kernel_log(_log(text))
    assert (f.kind, f.summary, f.line, f.module) == ("bug", message, 2, "mymod")
    assert strip_prefix(f.report.split("\n")[0]) == message
    assert strip_prefix(f.report.split("\n")[-1]).startswith("---[ end trace")


def test_data_corruption_reported_by_warn_keeps_its_warning_headline() -> None:
    # Without CONFIG_BUG_ON_DATA_CORRUPTION the message is WARN()'s, inside the cut-here block.
    text = "\n".join(["------------[ cut here ]------------",
                      "list_del corruption, ffff888006a3c000->next is NULL",
                      "WARNING: CPU: 0 PID: 93 at lib/list_debug.c:49 __list_del_entry_valid+0x59/0xc0",
                      "Call Trace:", " mymod_remove+0x11/0x20 [mymod]", "---[ end trace 0000000000000000 ]---"])
    [f] = scan_kernel_log(_log(text))
    assert (f.kind, f.line, f.module) == ("warning", 3, "mymod")
    assert "list_del corruption" in f.report


def test_data_corruption_line_alone_is_still_a_report() -> None:
    [f] = scan_kernel_log(_log("list_del corruption, ffff888006a3c000->next is NULL\nmymod: after"))
    assert (f.kind, f.line) == ("bug", 1)


# --------------------------------------------------------------------------------------------
# Taint
# --------------------------------------------------------------------------------------------


def test_taint_table_matches_kernel_documentation() -> None:
    assert [flag.bit for flag in TAINT_FLAGS] == list(range(19))
    assert "".join(flag.letter for flag in TAINT_FLAGS) == "PFSRMBUDAWCIOELKXTN"
    assert {flag.letter for flag in TAINT_FLAGS if flag.bad} == {"M", "B", "D", "W", "L"}
    assert TAINT_FLAGS[9] == TaintFlag(9, "W", "kernel issued warning", True)
    assert TAINT_FLAGS[12].mask == 4096


def test_decode_taint() -> None:
    assert [flag.letter for flag in decode_taint(12288)] == ["O", "E"]
    assert [flag.bit for flag in decode_taint(4096 | 512)] == [9, 12]
    assert decode_taint(0) == []
    unknown = decode_taint(1 << 19)
    assert [(flag.bit, flag.letter, flag.bad) for flag in unknown] == [(19, "?", False)]
    with pytest.raises(ValueError):
        decode_taint(-1)


def test_taint_string_in_bit_order() -> None:
    assert taint_string(12288) == "OE"
    assert taint_string(4096 | 512) == "WO"
    assert taint_string(1 | 128 | 512 | 4096 | 8192) == "PDWOE"
    assert taint_string(0) == ""


def test_taint_findings_only_new_bad_flags() -> None:
    # Loading an unsigned out-of-tree module (O, E) is expected, not a problem.
    assert taint_findings(0, 12288) == []
    # W was already set before the phase: that phase reported it.
    assert taint_findings(12288 | 512, 12288 | 512) == []
    findings = taint_findings(12288, 12288 | 512)
    assert len(findings) == 1
    f = findings[0]
    assert (f.kind, f.summary, f.line, f.module) == (
        "taint", "kernel tainted: W (kernel issued warning)", 0, None,
    )
    # The report lists every flag now set, old and new.
    for text in ("W", "kernel issued warning", "out-of-tree", "unsigned module was loaded"):
        assert text in f.report
    assert "12800" in f.report


def test_taint_findings_several_new_flags_in_bit_order() -> None:
    findings = taint_findings(512, 512 | 128 | 16384 | 4096)
    assert [f.summary for f in findings] == [
        "kernel tainted: D (kernel died recently, i.e. there was an OOPS or BUG)",
        "kernel tainted: L (soft lockup occurred)",
    ]
    assert taint_findings(0, 1 << 19) == []
    with pytest.raises(ValueError):
        taint_findings(-1, 0)
