"""The unload phase: rmmod in reverse load order (khgpio last), a kmemleak scan on a kernel that
has it, the health look and ``[unload] expect_dmesg``."""

from __future__ import annotations

import dataclasses
import re
import time

from kharness import health
from kharness.hw import gpio as khgpio
from kharness.kernels import debug as debugk
from kharness.modconfig import ModuleConfig
from kharness.result.finding import FindingKind
from kharness.result.model import cap
from kharness.runner.context import Context
from kharness.runner.load import expect_dmesg, module_command, module_failed, run_batch


def unload(run: Context, modules, config: ModuleConfig, timeout: float) -> None:
    with run.phase("unload"):
        # The kernel's own modules last, in reverse load order: one still in use after the
        # modules under test are gone was left holding a reference (rmmod says so).
        chain = run.deps.to_unload() if run.deps is not None else []
        # The last rmmod of a module under test rides with the chain's (one guest command fewer).
        last = modules[0] if modules and chain and run.khgpio is None else None
        tools = run.module_tools
        for m in reversed(modules):
            if m is not last:
                module_command(run, "unload", m.name, tools.rmmod_argv(m.name), timeout)
        if run.khgpio is not None:
            module_command(run, "unload", khgpio.MODULE, tools.rmmod_argv(khgpio.MODULE), timeout)
        if chain:
            steps = [(tools.rmmod_argv(n), f"'{n}'") for n in chain]
            if last is not None:
                steps.insert(0, (tools.rmmod_argv(last.name), f"'{last.name}'"))
            failed, res = run_batch(run, "unload", steps, timeout, "unloading the kernel's modules")
            if last is not None:
                if failed == 0:
                    module_failed(run, "unload", last.name, "rmmod", res, timeout)
                run.last_module_change = time.monotonic()
                failed = None if failed is None else failed - 1
            if failed is not None:
                why = (res.stderr or res.stdout).strip() or f"exit {res.rc}"
                raise run.fail("unload", f"rmmod {chain[failed]} (a kernel module loaded for the module under "
                                         f"test) failed: {why}")
            run.last_module_change = time.monotonic()
        if "kmemleak" in run.debug:
            kmemleak_scan(run, modules, timeout)
        unloaded = [m.name for m in modules] + ([khgpio.MODULE] if run.khgpio is not None else []) + chain
        run.check_health("unload", timeout, unloaded, listed=False)
        expect_dmesg(run, "unload", config.unload_expect_dmesg, modules)


def kmemleak_scan(run: Context, modules, timeout: float) -> None:
    """After rmmod: a kmemleak scan; the records whose allocation stack runs through a tested
    module fail the run, the kernel's own leaks are kept as non-blocking findings."""
    first, second = debugk.kmemleak_scan_commands(0)
    run.step("unload", first, max(timeout, 120.0), "the kmemleak scan")
    # Allocations younger than kmemleak's minimum age are not reported yet: wait them out.
    wait = debugk.KMEMLEAK_MIN_AGE + 0.5 - (time.monotonic() - run.last_module_change)
    first, second = debugk.kmemleak_scan_commands(wait)
    res = run.step("unload", second, max(timeout, 120.0) + max(wait, 0), "the kmemleak scan")
    text = debugk.symbolize_report(res.stdout, run.module_maps)
    run.result.dmesg["kmemleak"] = cap(text)
    names = [m.name for m in modules]
    mine, others = debugk.attribute_leaks(text, names)
    run.result.phase("unload").log += (f"$ kmemleak scan: {len(mine)} leak(s) of {', '.join(names)}, "
                                       f"{len(others)} of the kernel itself\n")
    for records, blocking in ((mine, True), (others, False)):
        for f in health.scan_kernel_log("\n".join(records)):
            if blocking:
                frame = re.search(r"(\w+\+0x[0-9a-f]+/0x[0-9a-f]+ \[\w+\])", f.report)
                f = dataclasses.replace(
                    f, summary=f.summary.rstrip(":") + (f", allocated in {frame.group(1)}" if frame else ""),
                    module=f.module or (frame and frame.group(1).rsplit("[", 1)[1].rstrip("]")))
            else:
                f = dataclasses.replace(f, summary=f.summary + " (not the module's: no frame of it in the "
                                                               "allocation stack)")
            run.result.findings.append(dataclasses.replace(f, phase="unload", blocking=blocking))
    if mine:
        f = next(x for x in run.result.findings if x.kind == FindingKind.KMEMLEAK and x.blocking)
        raise run.fail("unload", f"kmemleak found {len(mine)} leak(s): {f.summary}")
