"""A module's dkms.conf, read as DKMS reads it.

A dkms.conf is a bash fragment: DKMS sources it with ``$kernelver``, ``$arch``,
``$kernel_source_dir``, ``$dkms_tree``, ``$source_tree``, ``$module`` and ``$module_version`` set,
and takes the variables it left behind. kharness does the same, and no more: ``bash`` without
profile or rc files and with an empty environment but those variables sources the file in the
build's copy of the module directory (never the user's), under a deadline that kills its process
group; a fixed script then writes the known variables back NUL-separated, which Python splits (it
evaluates nothing). The selections DKMS makes with bash regular expressions (``MAKE_MATCH``,
``PATCH_MATCH``, ``BUILD_EXCLUSIVE_KERNEL``/``ARCH``) are made by that same bash, as DKMS makes
them; a regular expression bash cannot compile is an error here (DKMS ignores it silently).

Semantics followed (DKMS 3.x, ``read_conf`` and ``prepare_build``): ``MAKE[0]`` unless a
``MAKE_MATCH[n]`` matches ``$kernelver`` (the last one wins), default ``make -C
$kernel_source_dir M=$dkms_tree/$module/$module_version/build``; ``BUILT_MODULE_NAME`` defaults to
``PACKAGE_NAME`` when there is one record; ``BUILT_MODULE_LOCATION`` gets a trailing ``/``;
``PATCH[n]`` from ``patches/``, kept when ``PATCH_MATCH[n]`` is empty or matches;
``BUILD_EXCLUSIVE_CONFIG`` checked against the headers' ``include/config/auto.conf`` or ``.config``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from kharness import proc
from kharness.errors import UsageError

FILENAME = "dkms.conf"
EVAL_TIMEOUT = 30.0
ARRAYS = ("MAKE", "MAKE_MATCH", "PATCH", "PATCH_MATCH", "BUILT_MODULE_NAME", "BUILT_MODULE_LOCATION",
          "DEST_MODULE_NAME", "DEST_MODULE_LOCATION")
SCALARS = ("PACKAGE_NAME", "PACKAGE_VERSION", "CLEAN", "PRE_BUILD", "POST_BUILD", "BUILD_EXCLUSIVE_KERNEL",
           "BUILD_EXCLUSIVE_KERNEL_MIN", "BUILD_EXCLUSIVE_KERNEL_MAX", "BUILD_EXCLUSIVE_ARCH",
           "BUILD_EXCLUSIVE_CONFIG", "AUTOINSTALL", "BUILD_DEPENDS")

# Fixed text: the conf's path is $1, everything else comes from the environment. The conf's own
# output goes to stderr (DKMS discards it); the records go to fd 3, which is the pipe Python reads.
_SCRIPT = r"""
exec 3>&1 1>&2
. "$1"
_kh_emit() { builtin printf '%s\0%s\0%s\0' "$1" "$2" "$3" >&3; }
for _kh_v in """ + " ".join(ARRAYS + SCALARS) + r"""; do
    declare -n _kh_r="$_kh_v"
    for _kh_i in "${!_kh_r[@]}"; do _kh_emit "$_kh_v" "$_kh_i" "${_kh_r[$_kh_i]}"; done
    unset -n _kh_r
done
_kh_make=
[[ ${MAKE_MATCH[0]} ]] || _kh_make=${MAKE[0]}
for ((_kh_i = 0; _kh_i < ${#MAKE[@]}; _kh_i++)); do
    [[ ${MAKE[$_kh_i]} && ${MAKE_MATCH[$_kh_i]} && $kernelver =~ ${MAKE_MATCH[$_kh_i]} ]] && _kh_make=${MAKE[$_kh_i]}
done
_kh_emit _KH_MAKE 0 "$_kh_make"
_kh_n=0
for ((_kh_i = 0; _kh_i < ${#PATCH[@]}; _kh_i++)); do
    if [[ ${PATCH[$_kh_i]} && ( ! ${PATCH_MATCH[$_kh_i]} || $kernelver =~ ${PATCH_MATCH[$_kh_i]} ) ]]; then
        _kh_emit _KH_PATCH "$_kh_n" "${PATCH[$_kh_i]}"; _kh_n=$((_kh_n + 1))
    fi
done
_kh_match() { [[ $2 =~ $1 ]]; _kh_emit _KH_MATCH "$3" "$?"; }
[[ $BUILD_EXCLUSIVE_KERNEL ]] && _kh_match "$BUILD_EXCLUSIVE_KERNEL" "$kernelver" BUILD_EXCLUSIVE_KERNEL
[[ $BUILD_EXCLUSIVE_ARCH ]] && _kh_match "$BUILD_EXCLUSIVE_ARCH" "$arch" BUILD_EXCLUSIVE_ARCH
_kh_emit _KH_DONE 0 ok
"""


class BuildExcluded(Exception):
    """The module's dkms.conf excludes this kernel or architecture (``BUILD_EXCLUSIVE_*``): the
    cell is *skipped* with :attr:`reason`, neither failed nor an error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Context:
    """What DKMS sets before it sources a dkms.conf."""

    kernelver: str
    arch: str                  # `uname -m` of the target: x86_64, aarch64, armv7l, ppc64le, ppc64
    kernel_source_dir: Path    # the headers' build directory (/lib/modules/$kernelver/build)
    dkms_tree: Path
    source_tree: Path
    module: str = ""
    module_version: str = ""

    def env(self) -> dict[str, str]:
        return {"kernelver": self.kernelver, "arch": self.arch, "kernel_source_dir": str(self.kernel_source_dir),
                "dkms_tree": str(self.dkms_tree), "source_tree": str(self.source_tree), "module": self.module,
                "module_version": self.module_version, "PATH": "/usr/bin:/bin", "LC_ALL": "C"}


@dataclass(frozen=True)
class BuiltModuleSpec:
    name: str
    location: str = ""         # relative to the build directory, "" or ending in "/"
    dest_name: str = ""


@dataclass
class DkmsConf:
    path: Path
    values: dict[str, dict[str, str]]           # variable -> {index: value}, as bash left them
    make_command: str = ""                      # the MAKE DKMS picks for this kernel ("": its default)
    patches: list[str] = field(default_factory=list)
    matches: dict[str, int] = field(default_factory=dict)   # BUILD_EXCLUSIVE_* -> bash's =~ status

    def get(self, name: str, index: int | str = 0) -> str:
        return self.values.get(name, {}).get(str(index), "")

    @property
    def package_name(self) -> str:
        return self.get("PACKAGE_NAME")

    @property
    def package_version(self) -> str:
        return self.get("PACKAGE_VERSION")

    def modules(self) -> list[BuiltModuleSpec]:
        """DKMS's module records: as many as the longest of the four arrays."""
        size = max((len(self.values.get(a, {})) for a in ("BUILT_MODULE_NAME", "BUILT_MODULE_LOCATION",
                                                          "DEST_MODULE_NAME", "DEST_MODULE_LOCATION")), default=0)
        out = []
        for i in range(size):
            name = self.get("BUILT_MODULE_NAME", i) or (self.package_name if size == 1 else "")
            if not name:
                raise UsageError(f"{self.path}: no BUILT_MODULE_NAME[{i}]",
                                 hint="name each module dkms.conf lists (BUILT_MODULE_NAME[n]=\"mymod\")")
            if name.endswith((".o", ".ko")):
                raise UsageError(f"{self.path}: BUILT_MODULE_NAME[{i}] {name!r} ends in .o or .ko",
                                 hint="give the module's name without a suffix, as DKMS wants it")
            loc = self.get("BUILT_MODULE_LOCATION", i)
            if loc and not loc.endswith("/"):
                loc += "/"
            if loc.startswith("/") or ".." in Path(loc).parts:
                raise UsageError(f"{self.path}: BUILT_MODULE_LOCATION[{i}] {loc!r} leaves the module's directory",
                                 hint="give a path relative to the directory dkms.conf is in")
            out.append(BuiltModuleSpec(name, loc, self.get("DEST_MODULE_NAME", i) or name))
        return out


def parse_records(data: str) -> dict[str, dict[str, str]]:
    """``NAME\\0INDEX\\0VALUE\\0`` records into ``{NAME: {INDEX: VALUE}}``; a value's trailing
    carriage return (a conf written on Windows) is dropped, as DKMS drops it."""
    parts = data.split("\0")
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(parts) - 2, 3):
        out.setdefault(parts[i], {})[parts[i + 1]] = parts[i + 2].removesuffix("\r")
    return out


def evaluate(conf: Path, ctx: Context, *, cwd: Path, wrap=None, timeout: float = EVAL_TIMEOUT) -> DkmsConf:
    """``conf`` sourced by bash in ``cwd`` (the build's copy of the module directory) with
    ``ctx`` set. ``wrap(argv, env) -> (argv, env)`` may put the command in a sandbox."""
    argv = ["bash", "--noprofile", "--norc", "-c", _SCRIPT, "kh-dkms-conf", str(conf)]
    env: dict[str, str] | None = ctx.env()
    if wrap is not None:
        argv, env = wrap(argv, env)
    try:
        p = proc.run(argv, cwd=cwd, env=env, timeout=timeout, what=f"sourcing {conf.name}")
    except proc.ProcessTimeout:
        raise UsageError(f"{conf}: sourcing it did not finish within {timeout:g}s (it was stopped)",
                         hint="a dkms.conf only sets variables: move long work into PRE_BUILD") from None
    values = parse_records(p.stdout)
    if "_KH_DONE" not in values:
        tail = " ".join(p.stderr.strip().splitlines()[-2:])[:300]
        raise UsageError(f"{conf}: bash stopped while sourcing it (exit {p.returncode}){': ' + tail if tail else ''}",
                         hint="a dkms.conf is sourced by bash: it must not exit or exec")
    out = DkmsConf(conf, {k: v for k, v in values.items() if not k.startswith("_KH_")},
                   make_command=values.get("_KH_MAKE", {}).get("0", ""),
                   patches=[v for _, v in sorted(values.get("_KH_PATCH", {}).items(), key=lambda kv: int(kv[0]))],
                   matches={k: int(v) for k, v in values.get("_KH_MATCH", {}).items()})
    for name in ("PACKAGE_NAME", "PACKAGE_VERSION"):
        if not out.get(name):
            raise UsageError(f"{conf}: no {name}", hint=f"DKMS refuses a dkms.conf without {name}=\"...\"")
    return out


def version_key(v: str) -> str:
    """DKMS's VER(): every number padded to three digits, so that versions compare as strings."""
    return re.sub(r"\d+", lambda m: m.group().zfill(3), v).replace(" ", "")


def kernel_config(kernel_source_dir: Path) -> Path:
    auto = kernel_source_dir / "include" / "config" / "auto.conf"
    return auto if auto.exists() else kernel_source_dir / ".config"


def exclusion(conf: DkmsConf, ctx: Context) -> str | None:
    """Why ``conf`` excludes this kernel and architecture (None: it builds here)."""
    for name, what, value in (("BUILD_EXCLUSIVE_KERNEL", "kernel", ctx.kernelver),
                              ("BUILD_EXCLUSIVE_ARCH", "architecture", ctx.arch)):
        rx = conf.get(name)
        status = conf.matches.get(name)
        if rx and status == 2:
            raise UsageError(f"{conf.path}: {name} {rx!r} is not a regular expression bash can use",
                             hint="DKMS matches it with bash's [[ =~ ]] (POSIX extended regular expressions)")
        if rx and status != 0:
            return f"dkms.conf builds only for {what} {rx!r}, not {value}"
    low, high = conf.get("BUILD_EXCLUSIVE_KERNEL_MIN"), conf.get("BUILD_EXCLUSIVE_KERNEL_MAX")
    if low and version_key(ctx.kernelver) < version_key(low):
        return f"dkms.conf builds only for kernels from {low} (BUILD_EXCLUSIVE_KERNEL_MIN), not {ctx.kernelver}"
    if high and version_key(ctx.kernelver) > version_key(high):
        return f"dkms.conf builds only for kernels up to {high} (BUILD_EXCLUSIVE_KERNEL_MAX), not {ctx.kernelver}"
    wanted = conf.get("BUILD_EXCLUSIVE_CONFIG").split()
    cfg = kernel_config(ctx.kernel_source_dir)
    if wanted and cfg.is_file():
        have = set(re.findall(r"^(CONFIG_\w+)=[ym]", cfg.read_text(errors="replace"), re.M))
        for opt in wanted:
            if opt.startswith("!") and opt[1:] in have:
                return f"dkms.conf builds only for kernels without {opt[1:]} (BUILD_EXCLUSIVE_CONFIG); {ctx.kernelver} has it"
            if not opt.startswith("!") and opt not in have:
                return f"dkms.conf builds only for kernels with {opt} (BUILD_EXCLUSIVE_CONFIG); {ctx.kernelver} lacks it"
    return None


def dkms_make_command(conf: DkmsConf, build_dir: Path, ctx: Context, prefix_vars: list[str], jobs: int) -> str:
    """The make command DKMS runs (``eval``\\ed by bash in the build directory): the conf's, or
    DKMS's default, with DKMS's ``make -jN KERNELRELEASE=$kernelver`` put in place of its leading
    ``make``; kharness adds the toolchain's variables there (``prefix_vars``, plain words), which
    make hands on to every make below it."""
    cmd = conf.make_command or f"make -C {ctx.kernel_source_dir} M={build_dir}"
    if cmd.startswith("make"):
        words = ["make", f"-j{jobs}", f"KERNELRELEASE={ctx.kernelver}", *prefix_vars]
        cmd = " ".join(shlex.quote(w) for w in words) + cmd[len("make"):]
    return cmd
