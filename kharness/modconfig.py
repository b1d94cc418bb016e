"""``kharness.toml`` in a module directory: parameters, build options and checks.

Validated completely before anything is built or booted, so a typo is an immediate one-line
error naming the file, the entry and the field.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from kharness.build import companions
from kharness.checks import BaseCheck, Check, parse_check  # noqa: F401 (Check: callers build checks through it)
from kharness.checks.fields import errno_name, errno_of, same_errno
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
    requires: tuple[Requirement, ...] = ()  # kernel modules to load (with parameters) before the module
    skip: tuple[str, ...] = ()              # built modules left out of the load ([module] skip)
    expect_errno: dict = field(default_factory=dict)   # {module or "": errno name} loads that must fail so
    guest_packages: tuple[str, ...] = ()   # [guest] packages: Debian packages the checks need in a
                                           # distro guest (i2c-tools for i2cget); the busybox guest ignores them


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


# A kernel module's name (or an alias such as crypto-crc32c) as [module] requires gives it.
REQUIRE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Requirement:
    """One entry of ``[module] requires``: a kernel module to load, and its parameters."""

    name: str                                 # as written (``snd-dummy``)
    params: tuple[tuple[str, str], ...] = ()

    @property
    def module(self) -> str:
        """The module's name as the kernel spells it (``snd_dummy``)."""
        return self.name.replace("-", "_")

    def insmod_args(self) -> list[str]:
        return [insmod_arg(k, v) for k, v in self.params]

    def to_dict(self) -> dict:
        return {"name": self.name, "params": dict(self.params)}


def parse_requires(value, where: str) -> tuple[Requirement, ...]:
    """``["i2c-stub chip_addr=0x48", "snd-dummy"]``: a module name, then ``key=value`` words
    (a value with spaces in double quotes, as a shell would read it)."""
    if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
        raise UsageError(f"{where}: must be a list of strings such as \"i2c-stub chip_addr=0x48\"")
    out: list[Requirement] = []
    for entry in value:
        try:
            words = shlex.split(entry)
        except ValueError as e:
            raise UsageError(f"{where}: {entry!r}: {e}", hint='e.g. "scsi_debug dev_size_mb=8"') from None
        if not words or not REQUIRE_NAME_RE.fullmatch(words[0]):
            raise UsageError(f"{where}: {entry!r} does not start with a kernel module's name",
                             hint='a name such as "snd-dummy" (letters, digits, - and _), then key=value parameters')
        params: dict[str, str] = {}
        for w in words[1:]:
            key, eq, val = w.partition("=")
            if not eq:
                raise UsageError(f"{where}: {entry!r}: {w!r} is not key=value",
                                 hint='e.g. "i2c-stub chip_addr=0x48"')
            check_param(key, val, f"{where}: {words[0]}")
            params[key] = val
        req = Requirement(words[0], tuple(params.items()))
        if any(r.module == req.module for r in out):
            raise UsageError(f"{where}: {words[0]} is required twice", hint="give its parameters in one entry")
        out.append(req)
    return tuple(out)


def _param_value(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return ",".join(_param_value(x) for x in v)
    return str(v)


def parse_guest(table, path: Path) -> tuple[str, ...]:
    """``[guest] packages = ["i2c-tools"]``: the names (each checked as a Debian package name when
    a distro guest is made)."""
    if not isinstance(table, dict):
        raise _err(path, "[guest]", "must be a table such as [guest] packages = [\"i2c-tools\"]")
    bad = set(table) - {"packages"}
    if bad:
        raise _err(path, "[guest]", f"unknown key(s) {sorted(bad)}; known: packages")
    pkgs = table.get("packages", [])
    if not (isinstance(pkgs, list) and all(isinstance(x, str) for x in pkgs)):
        raise _err(path, "[guest] packages", "must be a list of Debian package names")
    return tuple(pkgs)


def load_config(directory: Path) -> ModuleConfig:
    path = directory / FILENAME
    if not path.is_file():
        return ModuleConfig()
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - {"module", "load", "unload", "check", "build", "gpio", "guest", companions.KEY}
    if unknown:
        raise _err(path, "top level",
                   f"unknown section(s) {sorted(unknown)}; known: module, build, gpio, guest, load, unload, check, "
                   f"{companions.KEY}")
    mod = data.get("module", {})
    build = data.get("build", {})
    if not isinstance(mod, dict) or not isinstance(build, dict):
        raise _err(path, "[module]/[build]", "must be tables")
    bad = set(mod) - {"name", "params", "load_order", "timeout", "sources", "ccflags", "include_dirs", "requires",
                      "skip"}
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
        known = {"expect_dmesg", "expect_errno"} if sec == "load" else {"expect_dmesg"}
        bad = set(s) - known
        if bad:
            raise _err(path, f"[{sec}]", f"unknown key(s) {sorted(bad)}; known: {', '.join(sorted(known))}")
        sections[sec] = _regex(path, f"[{sec}] expect_dmesg", s.get("expect_dmesg"))
    expect_errno = parse_expect_errno(data.get("load", {}).get("expect_errno"), f"{path}: [load] expect_errno")
    raw_checks = data.get("check", [])
    if not isinstance(raw_checks, list):
        raise _err(path, "check", "use [[check]] entries")
    if companions.KEY in data:   # one line standing for a program check per companion program
        raw_checks = raw_checks + companions.tables(data[companions.KEY], directory, f"{path}: {companions.KEY}")
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
                        checks=tuple(checks), timeout=timeout, gpio=gpio,
                        requires=parse_requires(mod.get("requires", []), f"{path}: [module] requires"),
                        skip=parse_skip(mod.get("skip", []), f"{path}: [module] skip"), expect_errno=expect_errno,
                        guest_packages=parse_guest(data.get("guest", {}), path))


# --- loads that must fail, and modules left out of the load ---------------------------------

# A built module's name as [module] skip and [load] expect_errno give it (- and _ are one).
MODULE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def parse_skip(value, where: str) -> tuple[str, ...]:
    """``[module] skip = ["silly"]``: built modules that are not loaded."""
    if not (isinstance(value, list) and all(isinstance(x, str) for x in value)):
        raise UsageError(f"{where}: must be a list of module names such as [\"silly\"]")
    for name in value:
        if not MODULE_NAME_RE.fullmatch(name):
            raise UsageError(f"{where}: {name!r} is not a module name", hint="letters, digits and _ (as modinfo names it)")
    return tuple(dict.fromkeys(n.replace("-", "_") for n in value))


def parse_expect_errno(value, where: str) -> dict[str, str]:
    """``[load] expect_errno = "ENODEV"`` (the one module loaded: key "") or ``{ kdatasize =
    "ENODEV", kdataalign = "ENODEV" }`` (those modules). Errno names are checked here; module
    names against the build, by :func:`resolve_expect_errno`."""
    if value is None:
        return {}
    table = {"": value} if isinstance(value, str) else value
    if not isinstance(table, dict) or not table:
        raise UsageError(f"{where}: must be an errno name such as \"ENODEV\", or a table such as "
                         f"{{ mymod = \"ENODEV\" }}")
    out: dict[str, str] = {}
    for mod, en in table.items():
        if mod and not MODULE_NAME_RE.fullmatch(mod):
            raise UsageError(f"{where}: {mod!r} is not a module name", hint="letters, digits and _ (as modinfo names it)")
        errno_name(lambda m: UsageError(f"{where}{'.' + mod if mod else ''}: {m}"), "expect_errno", en)
        out[mod.replace("-", "_")] = en
    return out


def resolve_expect_errno(config: ModuleConfig, loaded: list[str]) -> dict[str, str]:
    """``{module: errno}`` for the modules (of ``loaded``, the built ones not skipped, in load
    order) whose insmod must fail with that errno. A name that is not loaded, or a bare errno
    with several modules loaded, is a usage error (exit 2), found right after the build."""
    where = f"{config.path}: [load] expect_errno"
    exp = dict(config.expect_errno)
    if "" in exp:
        if len(loaded) != 1:
            raise UsageError(f"{where}: {exp['']} for which module? {len(loaded)} are loaded ({', '.join(loaded)})",
                             hint=f"say it per module: expect_errno = {{ {loaded[0] if loaded else 'mymod'} = "
                                  f"\"{exp['']}\" }}")
        return {loaded[0]: exp[""]}
    unknown = [m for m in exp if m not in loaded]
    if unknown:
        raise UsageError(f"{where}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the "
                         f"modules loaded ({', '.join(loaded) or 'none'})",
                         hint="name modules as modinfo names them; a skipped module is not loaded")
    return exp


def judge_load(name: str, expected: str, rc: int, output: str) -> str | None:
    """None when ``insmod name`` ended as ``[load] expect_errno`` says it must (failed with
    ``expected``); else what went otherwise. ``output`` is insmod's message (busybox's or kmod's
    ``...: No such device``), from which the errno is read."""
    if rc == 0:
        return f"insmod {name} succeeded; [load] expect_errno says it must fail with {expected}"
    got = errno_of(output)
    if not same_errno(got, expected):
        msg = output.strip().splitlines()[-1] if output.strip() else f"exit {rc}"
        return f"insmod {name} failed with {got or 'an error kharness cannot name'}, expected {expected} ({msg})"
    return None


def apply_skip(config: ModuleConfig, built: list[str]) -> list[str]:
    """``built`` (module names, in load order) without ``[module] skip``'s; a skip naming no
    built module is a usage error, and so is skipping every one."""
    where = f"{config.path}: [module] skip"
    unknown = [m for m in config.skip if m not in built]
    if unknown:
        raise UsageError(f"{where}: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not built here "
                         f"(built: {', '.join(built)})", hint="name modules as modinfo names them")
    kept = [m for m in built if m not in config.skip]
    if not kept:
        raise UsageError(f"{where}: leaves no module to load", hint="skip fewer modules")
    return kept


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
