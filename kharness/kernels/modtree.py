"""A kernel's own modules: what depmod says of them, and the chain to load before a module.

Reads the index files ``depmod`` writes (``modules.dep``, ``.alias``, ``.softdep``, ``.symbols``)
and the ones the kernel's build writes (``modules.builtin``, ``modules.builtin.modinfo``) into a
:class:`ModuleTree`, and answers what modprobe would load for a name: the module, every module it
depends on (transitively, dependencies first), its soft dependencies (``pre:`` before, ``post:``
after). Pure: the cache entry these files come from is :mod:`kharness.kernels.modstore`.

Names are compared as the kernel compares them: ``-`` and ``_`` are the same (``snd-dummy`` is
the module ``snd_dummy``); a name that is no module may be an alias (modules.alias globs).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping

from kharness.errors import UsageError

def normalise(name: str) -> str:
    """A module name as the kernel spells it: ``-`` is ``_``."""
    return name.replace("-", "_")


def normalise_alias(alias: str) -> str:
    """``-`` is ``_`` outside ``[...]`` (kmod's alias_normalize: a class such as ``[a-z]`` keeps
    its range)."""
    if "[" not in alias:
        return alias.replace("-", "_")
    out, depth = [], 0
    for ch in alias:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        out.append("_" if ch == "-" and not depth else ch)
    return "".join(out)


def module_name(path: str) -> str:
    """``kernel/sound/drivers/snd-dummy.ko.xz`` -> ``snd_dummy``."""
    return normalise(path.rsplit("/", 1)[-1].split(".ko", 1)[0])


# --- parsers: each takes a file's text ---------------------------------------------------------

def parse_modules_dep(text: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """``(name -> path, name -> dependency names)``. depmod lists every dependency, direct or not,
    each before the ones it needs (so the list read backwards is an order to load them in)."""
    paths: dict[str, str] = {}
    deps: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        if ":" not in line or line.lstrip().startswith("#"):
            continue
        mod, _, rest = line.partition(":")
        name = module_name(mod.strip())
        paths[name] = mod.strip()
        deps[name] = tuple(module_name(d) for d in rest.split())
    return paths, deps


def parse_modules_alias(text: str) -> list[tuple[str, str]]:
    """``[(alias pattern, module name)]`` from ``alias PATTERN MODULE`` lines (also modules.symbols)."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "alias":
            out.append((normalise_alias(words[1]), normalise(words[2])))
    return out


def parse_modules_symbols(text: str) -> dict[str, str]:
    """``symbol -> module`` from modules.symbols (``alias symbol:NAME MODULE``)."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "alias" and words[1].startswith("symbol:"):
            out[words[1][7:]] = normalise(words[2])
    return out


def parse_modules_softdep(text: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``name -> (pre, post)`` from ``softdep MOD pre: A B post: C`` lines. Words before any
    ``pre:``/``post:`` are ignored, as kmod ignores them (``softdep cifs gcm`` is in Debian's 6.1)."""
    out: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "softdep":
            continue
        pre: list[str] = []
        post: list[str] = []
        into = None
        for w in words[2:]:
            if w == "pre:":
                into = pre
            elif w == "post:":
                into = post
            elif into is not None:
                into.append(w)
        old = out.get(normalise(words[1]), ((), ()))
        out[normalise(words[1])] = (old[0] + tuple(pre), old[1] + tuple(post))
    return out


def parse_modules_builtin(text: str) -> set[str]:
    """Names of the modules built into the kernel image (``kernel/fs/ext4/ext4.ko`` lines)."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def parse_builtin_modinfo(data: bytes) -> list[tuple[str, str]]:
    """``[(alias, module)]`` of built-in modules, from the NUL-separated ``mod.alias=x`` strings of
    ``modules.builtin.modinfo`` (an alias naming a built-in module is satisfied by the kernel)."""
    out = []
    for raw in data.split(b"\0"):
        key, eq, val = raw.decode("utf-8", "replace").partition("=")
        mod, dot, field_ = key.partition(".")
        if eq and dot and field_ == "alias":
            out.append((normalise_alias(val), normalise(mod)))
    return out


# --- the tree ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModuleTree:
    """One kernel's modules. ``label`` names the kernel in messages (``6.1 for rpi2``).

    The large indices (26,000 aliases, every export) are read from ``index_dir`` and
    ``symvers_file`` on first use: a run that needs none of them does not pay for them."""

    label: str
    root: Path | None = None                      # the directory the paths are relative to
    paths: Mapping[str, str] = field(default_factory=dict)
    deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    softdeps: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    builtin: frozenset[str] = frozenset()
    builtin_aliases: tuple[tuple[str, str], ...] = ()
    extra_aliases: tuple[tuple[str, str], ...] = ()     # (pattern, module) besides modules.alias
    extra_exports: Mapping[str, str] = field(default_factory=dict)   # symbol -> module, besides modules.symbols
    extra_symvers: Mapping = field(default_factory=dict)             # symbol -> symbols.Export
    index_dir: Path | None = None                 # where modules.alias and modules.symbols are
    symvers_file: Path | None = None              # the kernel's Module.symvers

    def _index(self, name: str) -> str:
        p = self.index_dir / name if self.index_dir else None
        return p.read_text(errors="replace") if p and p.is_file() else ""

    @cached_property
    def aliases(self) -> tuple[tuple[str, str], ...]:
        return self.extra_aliases + tuple(parse_modules_alias(self._index("modules.alias")))

    @cached_property
    def exports(self) -> Mapping[str, str]:
        """``symbol -> module`` for what modules (not the kernel image) export."""
        return {**parse_modules_symbols(self._index("modules.symbols")), **self.extra_exports}

    @cached_property
    def symvers(self) -> Mapping:
        """``symbol -> symbols.Export`` from Module.symvers (empty without one)."""
        if self.symvers_file is None or not self.symvers_file.is_file():
            return dict(self.extra_symvers)
        from kharness.kernels.symbols import read_symvers
        return {**read_symvers(self.symvers_file.read_text(errors="replace")), **self.extra_symvers}

    @cached_property
    def _alias_index(self) -> tuple[dict[str, list[str]], list[tuple[str, str, str]]]:
        return _alias_index(self.aliases)

    @cached_property
    def _builtin_alias_index(self) -> tuple[dict[str, list[str]], list[tuple[str, str, str]]]:
        return _alias_index(self.builtin_aliases)

    def status(self, name: str) -> str:
        """``module``, ``builtin`` or ``absent`` for a module name (or an alias of one)."""
        found = self.resolve(name)
        if found is None:
            return "absent"
        return "module" if found else "builtin"

    def resolve(self, name: str) -> list[str] | None:
        """The modules ``name`` (a module or an alias) means: ``[]`` when the kernel has it built
        in, None when it has it in no form. An alias of several modules means them all, as it
        does to modprobe."""
        n = normalise(name)
        if n in self.paths:
            return [n]
        if n in self.builtin:
            return []
        a = normalise_alias(name)
        mods = _matching(self._alias_index, a)
        if mods:
            return [m for m in mods if m in self.paths] or ([] if any(m in self.builtin for m in mods) else None)
        return [] if _matching(self._builtin_alias_index, a) else None


def _alias_index(aliases: Iterable[tuple[str, str]]):
    """Exact aliases in a dict; globs (most of them: ``pci:v00008086d*...``) with the literal
    text before their first wildcard, which a name must start with before fnmatch is worth it."""
    exact: dict[str, list[str]] = {}
    globs: list[tuple[str, str, str]] = []
    for pattern, mod in aliases:
        cut = min((pattern.find(c) for c in "*?[" if c in pattern), default=-1)
        if cut < 0:
            exact.setdefault(pattern, []).append(mod)
        else:
            globs.append((pattern[:cut], pattern, mod))
    return exact, globs


def _matching(index, name: str) -> list[str]:
    exact, globs = index
    out = list(dict.fromkeys(exact.get(name, ())))
    for prefix, pattern, mod in globs:
        if name.startswith(prefix) and mod not in out and fnmatch.fnmatchcase(name, pattern):
            out.append(mod)
    return out


def read_tree(moddir: Path, label: str, symvers_file: Path | None = None) -> ModuleTree:
    """The tree of ``lib/modules/<release>`` after depmod (a file that is missing is empty)."""
    def text(name: str) -> str:
        p = moddir / name
        return p.read_text(errors="replace") if p.is_file() else ""

    paths, deps = parse_modules_dep(text("modules.dep"))
    info = moddir / "modules.builtin.modinfo"
    return ModuleTree(
        label=label, root=moddir, paths=paths, deps=deps,
        softdeps=parse_modules_softdep(text("modules.softdep")),
        builtin=frozenset(parse_modules_builtin(text("modules.builtin"))),
        builtin_aliases=tuple(parse_builtin_modinfo(info.read_bytes()) if info.is_file() else ()),
        index_dir=moddir, symvers_file=symvers_file)


# --- the chain to load ---------------------------------------------------------------------------

class MissingKernelModule(UsageError):
    """A module needs a kernel module that this kernel neither builds in nor ships."""

    def __init__(self, missing: Mapping[str, str], label: str):
        by_who: dict[str, list[str]] = {}
        for name, who in missing.items():
            by_who.setdefault(who, []).append(f"`{name}`")
        needs = "; ".join(f"{who} needs {' and '.join(names)}" for who, names in by_who.items())
        super().__init__(f"{needs}, which {label} does not ship",
                         hint="that kernel has it neither built in nor as a module: test on a target or "
                              "series whose kernel ships it; docs/kernel-modules.md lists which do")
        self.missing = dict(missing)
        self.label = label


@dataclass(frozen=True)
class ChainModule:
    """One kernel module to load before the modules under test."""

    name: str             # as /proc/modules and rmmod name it
    path: str             # relative to the tree's root
    source: Path | None   # the file in the cache
    wanted_by: str        # what asked for it: a module under test, "requires", or the module it serves
    soft: bool = False    # only a soft dependency (a failure to load it is not the module's)

    @property
    def guest_file(self) -> str:
        """Its file name in the guest: zstd-compressed modules go in decompressed (busybox
        insmod cannot read zstd); ``.ko``, ``.ko.xz`` and ``.ko.gz`` as they are."""
        base = self.path.rsplit("/", 1)[-1]
        return base.removesuffix(".zst")

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.path, "wanted_by": self.wanted_by, "soft": self.soft}


def external_depends(built: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``dependency -> the built module that needs it`` for what the modules under test (``name ->
    modinfo depends``) need beyond each other (a directory's modules may depend on one another)."""
    mine = {normalise(n) for n in built}
    out: dict[str, str] = {}
    for mod, deps in built.items():
        for d in deps:
            if d and normalise(d) not in mine:
                out.setdefault(normalise(d), mod)
    return out


def dependency_chain(tree: ModuleTree, names: Mapping[str, str] | Iterable[str]) -> list[ChainModule]:
    """What to insmod, in order, so that ``names`` (module names or aliases; a mapping gives who
    wants each, for the messages) and everything they need are loaded: each module after its
    dependencies (modules.dep), soft ``pre:`` dependencies before it and ``post:`` ones after,
    each module once. Built-in ones need nothing. Raises :class:`MissingKernelModule`, naming
    every name the kernel lacks, before anything is loaded."""
    wanted = dict(names) if isinstance(names, Mapping) else {n: "the module" for n in names}
    missing: dict[str, str] = {}
    order: list[ChainModule] = []
    placed: set[str] = set()

    def visit(name: str, why: str, stack: tuple[str, ...]) -> None:
        if name in placed or name in stack:   # (a cycle, which depmod refuses: load it once)
            return
        if name not in tree.paths:            # a tree read from modinfo may name a built-in one
            if tree.resolve(name) is None:
                missing.setdefault(name, why)
            return
        pre, post = tree.softdeps.get(name, ((), ()))
        for s in pre:
            for m in tree.resolve(s) or ():   # (a soft dependency the kernel lacks is no error)
                visit(m, name, stack + (name,))
        for d in reversed(tree.deps.get(name, ())):
            visit(d, name, stack + (name,))
        if name not in placed:
            placed.add(name)
            path = tree.paths[name]
            order.append(ChainModule(name, path, tree.root / path if tree.root else None, why))
        for s in post:
            for m in tree.resolve(s) or ():
                visit(m, name, stack + (name,))

    resolved = []
    for name, who in wanted.items():
        mods = tree.resolve(name)
        if mods is None:
            missing[name] = who
        else:
            resolved += [(m, who) for m in mods]
    if missing:
        raise MissingKernelModule(missing, tree.label)
    for m, who in resolved:
        visit(m, who, ())
    if missing:
        raise MissingKernelModule(missing, tree.label)
    hard = _hard_closure(tree, [m for m, _ in resolved])
    return [dataclasses.replace(c, soft=c.name not in hard) for c in order]


def _hard_closure(tree: ModuleTree, names: list[str]) -> set[str]:
    """``names`` and what they depend on through modules.dep (not through soft dependencies)."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in out:
            out.add(n)
            todo += tree.deps.get(n, ())
    return out
