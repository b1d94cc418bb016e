"""The kernel's own modules a run loads before the modules under test: the chain, resolved before
boot (a module the kernel lacks is named then, exit 2), delivered with the modules, loaded first
and unloaded last; and, when an insmod fails on unresolved symbols, their explanation.

The module tree is read only when something needs it: a module that depends on nothing and a
kharness.toml without ``[module] requires`` cost nothing here (see docs/kernel-modules.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from kharness import ui
from kharness.elf import depends
from kharness.errors import KharnessError, UsageError
from kharness.kernels.modtree import ChainModule, ModuleTree, dependency_chain, external_depends
from kharness.kernels.symbols import SymbolReport, explain_unknown_symbols, parse_symbol_lines, read_module_crcs
from kharness.modconfig import ModuleConfig

# Who wanted a module that kharness.toml's [module] requires names, when several modules are
# tested (with one, it is that module's need). Not a module name, so never one's key.
REQUIRES = "[module] requires"


@dataclass
class Deps:
    chain: list[ChainModule]                          # in load order
    args: dict[str, list[str]]                        # {chain module: its insmod arguments ([module] requires)}
    per_module: dict[str, list[str]]                  # {module under test or REQUIRES: chain names, in load order}
    opener: Callable[[], ModuleTree]                  # reads the tree (for a chain, or to explain symbols)
    status: dict[str, str] = field(default_factory=dict)   # {chain module: loaded | already loaded | failed}
    _tree: ModuleTree | None = None

    @property
    def tree(self) -> ModuleTree:
        if self._tree is None:
            self._tree = self.opener()
        return self._tree

    def record(self) -> dict | None:
        """The result's ``dependencies``: per module, its chain with each module's status."""
        if not self.per_module:
            return None
        by_name = {c.name: c for c in self.chain}
        return {who: [dict(by_name[n].to_dict(), params=self.args.get(n, []),
                           status=self.status.get(n, "not loaded")) for n in names]
                for who, names in self.per_module.items()}

    def to_unload(self) -> list[str]:
        """What this run loaded (not what the guest already had), in reverse load order."""
        return [c.name for c in reversed(self.chain) if self.status.get(c.name) == "loaded"]


def open_tree(spec, headers, built_kernel, target: str) -> ModuleTree:
    """The kernel's module tree: a Debian kernel's packages (with its headers' Module.symvers),
    or the build directory of a kernel kharness built."""
    from kharness.kernels import modstore   # (zstandard and the archive code: only when a chain is needed)

    if built_kernel is None:
        return modstore.modules_dep(spec, target, headers.build_dir)
    return modstore.build_tree(built_kernel.out, spec.release, spec.series, target)


def resolve(opener: Callable[[], ModuleTree], modules, config: ModuleConfig) -> Deps:
    """The chain for ``modules`` (the built modules that will be loaded) and ``[module] requires``.
    Raises MissingKernelModule (exit 2) naming what the kernel does not ship."""
    owner = modules[0].name if len(modules) == 1 else REQUIRES
    wanted = {r.name: owner for r in config.requires}
    for dep, who in external_depends({m.name: depends(m.modinfo) for m in modules}).items():
        wanted.setdefault(dep, who)
    if not wanted:
        return Deps([], {}, {}, opener)
    tree = opener()
    chain = dependency_chain(tree, wanted)
    per_module = {}
    for who in dict.fromkeys(wanted.values()):
        mine = {c.name for c in dependency_chain(tree, {n: w for n, w in wanted.items() if w == who})}
        per_module[who] = [c.name for c in chain if c.name in mine]
    args: dict[str, list[str]] = {}
    for r in config.requires:
        for name in tree.resolve(r.name) or ():
            args[name] = r.insmod_args()
    return Deps(chain, args, per_module, opener, _tree=tree)


def payload(deps: Deps, taken: set[str]) -> dict[str, bytes]:
    """The chain's files for the guest (``/kh/<file>``); ``taken``: the payload's other names."""
    if not deps.chain:
        return {}
    from kharness.kernels import modstore

    files = modstore.payload_for(deps.chain)
    clash = sorted(set(files) & taken)
    if clash:
        raise UsageError(f"a module built here has the file name of a kernel module it needs: {', '.join(clash)}",
                         hint="rename the module (its .ko file) so it does not shadow the kernel's own")
    return files


def explain(deps: Deps, module, window: str) -> SymbolReport | None:
    """Why ``module`` (a BuiltModule) did not load, when the kernel log of its insmod (``window``)
    names unresolved symbols; None when it names none."""
    if not parse_symbol_lines(window):
        return None
    try:
        tree = deps.tree
    except KharnessError as e:   # no tree (offline, say): the symbols are still named, unexplained
        ui.info(f"[yellow]cannot read the kernel's module tree to explain the symbols: {e}[/yellow]")
        tree = ModuleTree(label="this kernel")
    try:
        crcs = {module.name: read_module_crcs(module.path)}
    except KharnessError:
        crcs = {}
    loaded = [n for n, s in deps.status.items() if s in ("loaded", "already loaded")]
    licence = (module.modinfo.get("license") or [None])[0]
    return explain_unknown_symbols(window, tree, {module.name: licence} if licence else None,
                                   loaded=loaded, module_crcs=crcs)
