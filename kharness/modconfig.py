"""``kharness.toml`` in a module directory: parameters, build options and checks.

Validated completely before anything is built or booted, so a typo is an immediate one-line
error naming the file, the entry and the field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kharness.checks import BaseCheck, Check, parse_check  # noqa: F401 (Check: callers build checks through it)
from kharness.errors import UsageError
from kharness.hw import gpio as khgpio

FILENAME = "kharness.toml"
_PARAM_RE = re.compile(r"^(?:(?P<mod>[A-Za-z_][A-Za-z0-9_]*)\.)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<val>.*)$", re.S)
# A module parameter is named by module_param(): a C identifier.
PARAM_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The bytes the kernel's isspace() takes for a space (lib/ctype.c: \t\n\v\f\r, space and
# Latin-1's no-break space 0xa0, which is also the second byte of UTF-8 letters such as "à").
_KERNEL_SPACES = frozenset(b"\t\n\v\f\r \xa0")


@dataclass(frozen=True)
class ModuleConfig:
    path: Path | None = None
    name: str | None = None
    sources: tuple[str, ...] = ()
    ccflags: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)          # {module or "": {key: value}}
    load_order: tuple[str, ...] = ()
    load_expect_dmesg: str | None = None
    unload_expect_dmesg: str | None = None
    checks: tuple[BaseCheck, ...] = ()
    timeout: float | None = None
    gpio: khgpio.GpioConfig | None = None   # load the kharness virtual GPIO controller first


def _err(path: Path, where: str, msg: str) -> UsageError:
    return UsageError(f"{path}: {where}: {msg}")


def _regex(path: Path, where: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(path, where, "must be a string (a regular expression)")
    try:
        re.compile(value)
    except re.error as e:
        raise _err(path, where, f"invalid regular expression: {e}") from None
    return value


def param_problem(value: str) -> str | None:
    """Why the kernel cannot be given ``value`` as one module parameter (None: it can).

    The kernel's parser (kernel/params.c, next_arg) splits insmod's arguments at spaces outside
    double quotes and drops the quotes around a value; it has no escape for a double quote inside
    one, so a value holding one would end early and the rest would become other parameters."""
    if '"' in value:
        return 'it holds a double quote ("), which the kernel\'s parameter parser cannot take inside a value'
    bad = next((ch for ch in value if ord(ch) < 0x20 or ord(ch) == 0x7f), None)
    if bad is not None:
        return f"it holds the control character {bad!r}, which cannot be passed as a module parameter"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "it is not valid UTF-8 text"
    return None


def check_param(name: str, value: str, where: str) -> None:
    """Refuse (exit 2, before any build) a parameter insmod cannot pass to the kernel as given."""
    if not PARAM_NAME_RE.fullmatch(name):
        raise UsageError(f"{where}: {name!r} is not a module parameter name",
                         hint="a parameter is named as module_param() names it: letters, digits and _")
    why = param_problem(value)
    if why is not None:
        raise UsageError(f"{where}: the value {value!r} of parameter {name} cannot be passed to the kernel: {why}",
                         hint="give a value without double quotes or control characters")


def insmod_arg(name: str, value: str) -> str:
    """``name=value`` as one insmod argument that the kernel reads back as exactly ``value``:
    in double quotes when it is empty or holds a byte the kernel takes for a space."""
    check_param(name, value, "insmod")
    if not value or any(b in _KERNEL_SPACES for b in value.encode()):
        return f'{name}="{value}"'
    return f"{name}={value}"


def _param_value(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return ",".join(_param_value(x) for x in v)
    return str(v)


def load_config(directory: Path) -> ModuleConfig:
    path = directory / FILENAME
    if not path.is_file():
        return ModuleConfig()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - {"module", "load", "unload", "check", "build", "gpio"}
    if unknown:
        raise _err(path, "top level",
                   f"unknown section(s) {sorted(unknown)}; known: module, build, gpio, load, unload, check")
    mod = data.get("module", {})
    build = data.get("build", {})
    if not isinstance(mod, dict) or not isinstance(build, dict):
        raise _err(path, "[module]/[build]", "must be tables")
    bad = set(mod) - {"name", "params", "load_order", "timeout", "sources", "ccflags", "include_dirs"}
    if bad:
        raise _err(path, "[module]", f"unknown key(s) {sorted(bad)}")
    bad = set(build) - {"sources", "ccflags", "include_dirs"}
    if bad:
        raise _err(path, "[build]", f"unknown key(s) {sorted(bad)}")
    merged_build = {**{k: mod[k] for k in ("sources", "ccflags", "include_dirs") if k in mod}, **build}
    for k, v in merged_build.items():
        if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            raise _err(path, k, "must be a list of strings")
    params_raw = mod.get("params", {})
    if not isinstance(params_raw, dict):
        raise _err(path, "[module] params", "must be a table such as { myint = 5 }")
    params: dict[str, dict[str, str]] = {}
    for k, v in params_raw.items():
        if isinstance(v, dict):  # per-module table: params.alpha = { x = 1 }
            params.setdefault(k, {}).update({kk: _param_value(vv) for kk, vv in v.items()})
        else:
            params.setdefault("", {})[k] = _param_value(v)
    for mod_name, kv in params.items():
        for k, v in kv.items():
            check_param(k, v, f"{path}: [module] params{'.' + mod_name if mod_name else ''}")
    sections = {}
    for sec in ("load", "unload"):
        s = data.get(sec, {})
        if not isinstance(s, dict):
            raise _err(path, f"[{sec}]", "must be a table, e.g. [load] expect_dmesg = '...'")
        bad = set(s) - {"expect_dmesg"}
        if bad:
            raise _err(path, f"[{sec}]", f"unknown key(s) {sorted(bad)}; known: expect_dmesg")
        sections[sec] = _regex(path, f"[{sec}] expect_dmesg", s.get("expect_dmesg"))
    raw_checks = data.get("check", [])
    if not isinstance(raw_checks, list):
        raise _err(path, "check", "use [[check]] entries")
    checks = [parse_check(path, i, c) for i, c in enumerate(raw_checks, 1)]
    gpio = None
    if "gpio" in data or any(c.kind == "gpio" for c in checks):
        gpio = khgpio.parse_config(data.get("gpio", {}), lambda m: UsageError(f"{path}: {m}"))
        for i, c in enumerate(checks, 1):
            if c.kind == "gpio" and c.line >= gpio.lines:
                raise _err(path, f"check #{i} ({c.name})",
                           f"'line' {c.line} is out of range: khgpio has lines 0 to {gpio.lines - 1} "
                           f"(set [gpio] lines to have more, up to {khgpio.MAX_LINES})")
    if gpio is None:
        texts = [v for kv in params.values() for v in kv.values()] + \
            [str(getattr(c, f, None) or "") for c in checks for f in ("run", "path", "write", "device")]
        if any("{gpio." in t for t in texts):
            raise _err(path, "{gpio.*}", "GPIO numbers are used but no [gpio] section loads the kharness "
                                         "virtual GPIO controller: add [gpio]")
    name = mod.get("name")
    if name is not None and not isinstance(name, str):
        raise _err(path, "[module] name", "must be a string")
    order = mod.get("load_order", [])
    if not (isinstance(order, list) and all(isinstance(x, str) for x in order)):
        raise _err(path, "[module] load_order", "must be a list of module names")
    timeout = mod.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise _err(path, "[module] timeout", "must be a positive number of seconds")
    return ModuleConfig(path=path, name=name, sources=tuple(merged_build.get("sources", ())),
                        ccflags=tuple(merged_build.get("ccflags", ())),
                        include_dirs=tuple(merged_build.get("include_dirs", ())),
                        params=params, load_order=tuple(order),
                        load_expect_dmesg=sections["load"], unload_expect_dmesg=sections["unload"],
                        checks=tuple(checks), timeout=timeout, gpio=gpio)


def parse_cli_params(values: list[str]) -> dict[str, dict[str, str]]:
    """``--param myint=5`` / ``--param alpha.myint=5`` into ``{module or "": {key: value}}``."""
    out: dict[str, dict[str, str]] = {}
    for v in values:
        m = _PARAM_RE.match(v)
        if not m:
            raise UsageError(f"--param {v!r} is not KEY=VALUE", hint="e.g. --param myint=5 or --param mymod.myint=5")
        check_param(m.group("key"), m.group("val"), f"--param {v!r}")
        out.setdefault(m.group("mod") or "", {})[m.group("key")] = m.group("val")
    return out


def merge_params(*layers: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for layer in layers:
        for mod, kv in layer.items():
            out.setdefault(mod, {}).update(kv)
    return out
