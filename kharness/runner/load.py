"""The load phase: khgpio first when kharness.toml asks for it, then each module in load order
with its parameters (placeholders resolved), the health look, ``[load] expect_dmesg``, and the
character devices' majors for the checks. Also insmod/rmmod of one module, which unload shares."""

from __future__ import annotations

import shlex
import time

from kharness import agent_client as agent
from kharness import checks, ui
from kharness.build.kbuild import BuiltModule
from kharness.errors import InfraError
from kharness.hw import gpio as khgpio
from kharness.kernels import debug as debugk
from kharness.modconfig import ModuleConfig, insmod_arg
from kharness.runner import verdict
from kharness.runner.context import Context
from kharness.vm.errors import GuestError


def insmod_args(params: dict[str, str]) -> list[str]:
    """busybox insmod joins its argv with spaces and the kernel's parameter parser splits them
    again (honouring double quotes): each argument is quoted for that parser, and a value it
    cannot take is refused. The shell between (shlex.join) keeps each argument whole."""
    return [insmod_arg(k, v) for k, v in params.items()]


def load(run: Context, modules, per_module: dict[str, dict[str, str]], config: ModuleConfig,
         timeout: float) -> None:
    with run.phase("load") as ph:
        run.values.update(checks.values_for([m.name for m in modules], {}))
        if config.gpio is not None:
            _load_khgpio(run, config, timeout)
        for m in modules:
            # Parameters may name resolved values: button_gpio = "{gpio.17}".
            per_module[m.name] = {k: checks.substitute(v, run.values, f"parameter {m.name}.{k}")
                                  for k, v in per_module[m.name].items()}
            argv = ["insmod", f"/kh/{m.name}.ko", *insmod_args(per_module[m.name])]
            module_command(run, "load", m.name, argv, timeout)
            if "kmemleak" in run.debug:
                _map_module(run, m, timeout)
        loaded = [m.name for m in modules] + ([khgpio.MODULE] if config.gpio is not None else [])
        run.check_health("load", timeout, loaded, listed=True)
        expect_dmesg(run, "load", config.load_expect_dmesg, modules)
        _resolve_majors(run)
        ph.message = ", ".join(m.name for m in modules)


def module_command(run: Context, phase: str, name: str, argv: list[str], timeout: float) -> None:
    """insmod/rmmod one module; a failure is explained by the kernel's report when it has one.
    (Whether /proc/modules agrees is read by the health look that ends the phase.)"""
    tool = argv[0]
    cmd = shlex.join(argv)
    res = run.step(phase, cmd, timeout, f"{tool} {name}")
    run.result.phase(phase).log += f"$ {cmd}\n{res.stdout}{res.stderr}"
    if res.rc != 0:
        try:
            bad = run.look(phase, timeout)
        except GuestError:
            bad = []
        why = (res.stderr or res.stdout).strip() or "no message"
        if bad:
            raise run.fail(phase, f"kernel reported {bad[0].kind} during {tool} {name}: "
                                  f"{bad[0].summary} ({tool}: {why})")
        raise run.fail(phase, f"{tool} {name} failed (exit {res.rc}): {why}")
    run.last_module_change = time.monotonic()


def expect_dmesg(run: Context, phase: str, regex: str | None, modules) -> None:
    """``[load]``/``[unload]`` ``expect_dmesg``: the kernel log of the phase must match."""
    values = dict(run.values, **checks.values_for([m.name for m in modules], run.result.params))
    miss = verdict.expect_dmesg_miss(phase, regex, values, run.result.dmesg.get(phase, ""))
    if miss:
        raise run.fail(phase, miss)


def _load_khgpio(run: Context, config: ModuleConfig, timeout: float) -> None:
    """insmod khgpio before the module under test; {gpio.base} and {gpio.N} from its base."""
    argv = config.gpio.insmod_argv(f"/kh/{khgpio.MODULE}.ko")
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
