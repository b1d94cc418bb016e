"""The load phase: khgpio first when kharness.toml asks for it, then each module in load order
with its parameters (placeholders resolved), the health look, ``[load] expect_dmesg``, and the
character devices' majors for the checks. Also insmod/rmmod of one module, which unload shares."""

from __future__ import annotations

import shlex
import time
from typing import Callable

from kharness import agent_client as agent
from kharness import checks, ui
from kharness.build.kbuild import BuiltModule
from kharness.errors import InfraError
from kharness.hw import gpio as khgpio
from kharness.kernels import debug as debugk
from kharness.kernels.symbols import SymbolReport
from kharness.checks.fields import errno_of
from kharness.modconfig import ModuleConfig, insmod_arg, judge_load
from kharness.runner import deps as kdeps
from kharness.runner import verdict
from kharness.runner.context import Context, module_tool
from kharness.vm.errors import GuestError


def insmod_args(params: dict[str, str]) -> list[str]:
    """busybox insmod joins its argv with spaces and the kernel's parameter parser splits them
    again (honouring double quotes): each argument is quoted for that parser, and a value it
    cannot take is refused. The shell between (shlex.join) keeps each argument whole."""
    return [insmod_arg(k, v) for k, v in params.items()]


def load(run: Context, modules, per_module: dict[str, dict[str, str]], config: ModuleConfig,
         timeout: float, deps: kdeps.Deps | None = None, expected: dict[str, str] | None = None) -> list:
    """Load the kernel's own modules ``deps`` names, khgpio, then ``modules`` (those
    ``expected`` names must fail to load, with that errno); the modules under test now loaded."""
    expected = expected or {}
    with run.phase("load") as ph:
        run.deps = deps
        # The first module's insmod rides with the chain's: one guest command fewer (tens of
        # milliseconds under TCG), when nothing must come between them.
        first = modules[0] if modules and config.gpio is None and modules[0].name not in expected else None
        folded = None
        if deps is not None and deps.chain:
            folded = load_chain(run, deps, timeout, first and _insmod_argv(run, first, per_module))
        if config.gpio is not None:
            _load_khgpio(run, config, timeout)
        run.values.update(checks.values_for([m.name for m in modules if m.name not in expected], {}))
        loaded = []
        for m in modules:
            argv = _insmod_argv(run, m, per_module)
            if m.name in expected:
                must_fail(run, m.name, argv, expected[m.name], timeout)
                continue
            explain = (lambda window, m=m: kdeps.explain(deps, m, window)) if deps is not None else None
            if folded is not None and m is first:
                if folded.rc != 0:   # the chain loaded; its last step, this insmod, did not
                    module_failed(run, "load", m.name, "insmod", folded, timeout, explain)
                run.last_module_change = time.monotonic()
            else:
                module_command(run, "load", m.name, argv, timeout, explain=explain)
            loaded.append(m)
            if "kmemleak" in run.debug:
                _map_module(run, m, timeout)
        listed = ([m.name for m in loaded] + ([khgpio.MODULE] if config.gpio is not None else [])
                  + (deps.to_unload() if deps is not None else []))
        # A distro guest: udev has the module's uevents to act on (its rules) before the look.
        run.check_health("load", timeout, listed, listed=True, before=run.after_load)
        expect_dmesg(run, "load", config.load_expect_dmesg, [m for m in modules if m.name not in expected])
        _resolve_majors(run)
        ph.message = ", ".join(m.name for m in loaded)
        if expected:
            ph.message += (", " if loaded else "") + ", ".join(f"{m.name} failed with {expected[m.name]} as expected"
                                                              for m in modules if m.name in expected)
        if deps is not None and deps.chain:
            first = [c.name for c in deps.chain if deps.status.get(c.name) in ("loaded", "already loaded")]
            ph.message += f" (after the kernel's own {', '.join(first)})"
        return loaded


def _insmod_argv(run: Context, m, per_module: dict[str, dict[str, str]]) -> list[str]:
    # Parameters may name resolved values: button_gpio = "{gpio.17}".
    per_module[m.name] = {k: checks.substitute(v, run.values, f"parameter {m.name}.{k}")
                          for k, v in per_module[m.name].items()}
    return run.module_tools.insmod_argv(f"/kh/{m.name}.ko", insmod_args(per_module[m.name]))


def load_chain(run: Context, deps: kdeps.Deps, timeout: float, then: list[str] | None = None):
    """insmod the kernel's own modules, in order. A hard dependency that does not load fails the
    load (the module under test cannot load without it); a soft one is noted and left out, as
    modprobe leaves it out. One the guest already has stays as it is (and loaded after the run).

    ``then``: the first module under test's insmod, run in the same guest command after the
    chain. Returns that command's result once the chain is in (its rc says whether ``then``
    worked), or None when ``then`` did not run with it (the caller runs it on its own)."""
    pending = list(deps.chain)
    try:
        while pending:
            steps = [(run.module_tools.insmod_argv(f"/kh/{c.guest_file}", deps.args.get(c.name, [])),
                      f"/kh/{c.guest_file}") for c in pending]
            if then is not None:
                steps.append((then, module_tool(then)[1]))
            failed, res = run_batch(run, "load", steps, timeout, "loading the kernel's modules")
            for c in pending[:failed]:
                deps.status[c.name] = "loaded"
            run.last_module_change = time.monotonic()
            if failed is None or failed == len(pending):
                return res if then is not None else None
            c, out = pending[failed], (res.stderr or res.stdout).strip()
            pending = pending[failed + 1:]
            if errno_of(out) == "EEXIST":
                deps.status[c.name] = "already loaded"
            elif c.soft:
                deps.status[c.name] = "failed"
                run.result.phase("load").log += f"(a soft dependency of {c.wanted_by}: left out, as modprobe would)\n"
            else:
                run.result.dependencies = deps.record()
                bad = _look(run, "load", timeout)
                why = f"kernel reported {bad[0].kind}: {bad[0].summary}" if bad else (out or f"exit {res.rc}")
                raise run.fail("load", f"kernel module {c.name}, which {c.wanted_by} needs, did not load: {why}")
        return None
    finally:
        run.result.dependencies = deps.record()


def run_batch(run: Context, phase: str, steps: list[tuple[list[str], str]], timeout: float, what: str):
    """``steps`` (``(argv, what its error message names)``) as one guest command joined by
    ``&&``: each command costs tens of milliseconds under TCG, and a chain is several. Returns
    (the index of the step that failed, or None; the command's result). The steps before the
    failed one succeeded; the ones after it did not run."""
    res = run.step(phase, " && ".join(shlex.join(argv) for argv, _ in steps), timeout, what)
    failed = None
    if res.rc != 0:
        out = res.stderr + res.stdout
        # busybox names the file or module it could not insert or unload; if it named none, the
        # first step is blamed (and said so by its own message).
        failed = next((i for i, (_, mark) in enumerate(steps) if mark in out), 0)
    ran = steps if failed is None else steps[:failed + 1]
    run.result.phase(phase).log += "".join(f"$ {shlex.join(argv)}\n" for argv, _ in ran) + res.stdout + res.stderr
    return failed, res


def must_fail(run: Context, name: str, argv: list[str], errno: str, timeout: float) -> None:
    """``[load] expect_errno``: insmod ``name`` must fail with ``errno`` (the health look that
    ends the phase still fails the run on an oops or a WARN meanwhile)."""
    cmd = shlex.join(argv)
    res = run.step("load", cmd, timeout, f"insmod {name}")
    run.result.phase("load").log += f"$ {cmd}\n{res.stdout}{res.stderr}"
    out = (res.stderr or res.stdout).strip()
    why = judge_load(name, errno, res.rc, out)
    got = errno_of(out) if res.rc != 0 else None
    record = run.result.expected_load_failures = run.result.expected_load_failures or {}
    record[name] = {"expected": errno, "got": got, "as_expected": why is None, "output": out}
    run.last_module_change = time.monotonic()
    if why is not None:
        bad = _look(run, "load", timeout) if res.rc != 0 else []
        if bad:   # an oops that killed insmod: the kernel's report says it best
            why = f"kernel reported {bad[0].kind} during insmod {name}: {bad[0].summary} (insmod: {out or res.rc})"
        raise run.fail("load", why)


def _look(run: Context, phase: str, timeout: float):
    try:
        return run.look(phase, timeout)
    except GuestError:
        return []


def module_command(run: Context, phase: str, name: str, argv: list[str], timeout: float,
                   explain: Callable[[str], SymbolReport | None] | None = None) -> None:
    """insmod/rmmod one module; a failure is explained by the kernel's report when it has one, and
    by ``explain`` (the kernel log of the failure -> why its symbols did not resolve) when given.
    (Whether /proc/modules agrees is read by the health look that ends the phase.)"""
    tool = module_tool(argv)[0]   # insmod, rmmod: whichever runs it (busybox's, kh-agent's)
    cmd = shlex.join(argv)
    res = run.step(phase, cmd, timeout, f"{tool} {name}")
    run.result.phase(phase).log += f"$ {cmd}\n{res.stdout}{res.stderr}"
    if res.rc != 0:
        module_failed(run, phase, name, tool, res, timeout, explain)
    run.last_module_change = time.monotonic()


def module_failed(run: Context, phase: str, name: str, tool: str, res, timeout: float,
                  explain: Callable[[str], SymbolReport | None] | None = None):
    """Raise the failure of ``tool`` (insmod, rmmod) on module ``name`` whose command ended with
    ``res``: the kernel's report when it has one, else the explanation of its symbols, else
    what the tool said."""
    seen = len(run.result.dmesg.get(phase, ""))
    bad = _look(run, phase, timeout)
    why = (res.stderr or res.stdout).strip() or "no message"
    if bad:
        raise run.fail(phase, f"kernel reported {bad[0].kind} during {tool} {name}: "
                              f"{bad[0].summary} ({tool}: {why})")
    report = explain(run.result.dmesg.get(phase, "")[seen:]) if explain is not None else None
    if report is not None and report.problems:
        run.result.unknown_symbols = report.to_dict()
        raise run.fail(phase, f"{tool} {name} failed (exit {res.rc}): {why}; {report.summary}")
    raise run.fail(phase, f"{tool} {name} failed (exit {res.rc}): {why}")


def expect_dmesg(run: Context, phase: str, regex: str | None, modules) -> None:
    """``[load]``/``[unload]`` ``expect_dmesg``: the kernel log of the phase must match."""
    values = dict(run.values, **checks.values_for([m.name for m in modules], run.result.params))
    miss = verdict.expect_dmesg_miss(phase, regex, values, run.result.dmesg.get(phase, ""))
    if miss:
        raise run.fail(phase, miss)


def _load_khgpio(run: Context, config: ModuleConfig, timeout: float) -> None:
    """insmod khgpio before the module under test; {gpio.base} and {gpio.N} from its base."""
    argv = config.gpio.insmod_argv(f"/kh/{khgpio.MODULE}.ko", run.module_tools.insmod)
    res = run.step("load", agent.khgpio_load(argv), timeout, "insmod khgpio")
    run.result.phase("load").log += f"$ {shlex.join(argv)}\n{res.stdout}{res.stderr}"
    try:
        base = agent.parse_khgpio_base(res.stdout)
    except (ValueError, IndexError):
        why = (res.stderr or res.stdout).strip() or f"exit {res.rc}"
        hint = ("another GPIO controller may use that range: try [gpio] base = \"auto\""
                if config.gpio.base is not None else None)
        raise InfraError(f"the kharness virtual GPIO controller did not load: {why}", hint=hint)
    run.values.update(khgpio.values(base, config.gpio.lines))
    run.result.gpio = {"controller": khgpio.MODULE, "base": base, "lines": config.gpio.lines}


def _resolve_majors(run: Context) -> None:
    """{major.NAME} for every character device; {major} for the one the module added (both
    from /proc/devices as the health look after loading read it)."""
    now = run.char_devices
    run.values.update({f"major.{n}": m for n, m in now.items()})
    new = {n: m for n, m in now.items() if n not in run.devices_at_boot}
    if len(new) == 1:
        run.values["major"] = next(iter(new.values()))
    elif run.values.get("module") in now:
        run.values["major"] = now[run.values["module"]]


def _map_module(run: Context, m: BuiltModule, timeout: float) -> None:
    """Where the kernel put the module's sections: once it is unloaded, kmemleak can only
    print raw addresses, and this turns them back into the module's functions."""
    sec = f"/sys/module/{m.name}/sections"
    res = run.step("load", f"grep -H . {sec}/.[!.]* {sec}/* 2>/dev/null", timeout, "reading module sections")
    try:
        run.module_maps.append(debugk.module_map(m.name, m.path, res.stdout))
    except Exception as e:   # an unreadable .ko only costs the symbol names
        ui.info(f"[yellow]cannot map {m.name}'s sections for kmemleak: {e}[/yellow]")
