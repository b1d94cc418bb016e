"""Decide what a module directory builds, and generate its kbuild Makefile when it has none.

* A directory with a ``dkms.conf`` builds as DKMS would build it (kharness.build.dkms).
* A directory with a ``Kbuild`` file, or a ``Makefile`` mentioning ``obj-m``/``obj-$(CONFIG_``,
  builds with its own rules: the Makefile's default target when it has rules of its own
  (kharness.build.ownmake), else kbuild ``M=``.
* Otherwise each top-level ``.c`` file that has a ``module_init`` (or ``module_*_driver``) is the
  root of a module. One root and helper files: one multi-file module named after the directory
  (``name-objs := a.o b.o``). Several roots and no helpers: one module per root. No root: one
  module from all files. ``[module] name`` / ``sources`` in ``kharness.toml`` override this.
  A top-level user-space program (a ``.c`` file with a ``main`` and no ``module_init``, such as
  a ``test.c``) is not a module source (see kharness.build.companions).

The generated Makefile is ``module_templates/kbuild/Makefile.in`` with its ``@{...}`` placeholders
filled in (:func:`render_makefile`); every ``kharness run`` renders it, so it takes no template
engine (jinja2 would cost a restored run ~25 ms of import and compile).
"""

from __future__ import annotations

import os
import re
import shlex
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kharness import __version__
from kharness.build.companions import has_main
from kharness.errors import UsageError
from kharness.paths import data_dir

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# What makes a .c file the root of a module: module_init or one of the helper macros that expand
# to it (module_platform_driver, module_i2c_driver, module_misc_device, ...), not module_param.
_ROOT_RE = re.compile(r"^\s*(module_init|module_\w*driver\w*|module_misc_device)\s*\(", re.M)
_OBJ_M_RE = re.compile(r"^\s*obj-(m|\$\(CONFIG_\w+\))\s*[:+]?=", re.M)
MAKEFILE_NAMES = ("GNUmakefile", "makefile", "Makefile")
DKMS_CONF = "dkms.conf"
# A rule of the Makefile's own (``all:``, ``modules: ...``, ``default::``), not an assignment
# (``obj-m := x.o``, ``KDIR ?= ...``) nor a special target (``.PHONY:``), nor a recipe line.
_RULE_RE = re.compile(r"^(?![\t.#])[^\s:=#][^:=#]*::?(?![=:])", re.M)
BUILT_BY = ("dkms", "own-makefile", "kbuild")
# How far above the module directory the build's shadow tree reaches (see kbuild.make_shadow).
SHADOW_LEVELS = 2
# A path that goes into the generated Makefile (or into make's command line) as it is: nothing
# in it means anything to make (no $ # \ newline; no : % = of rules, which kbuild's dependency
# lists turn every header path into) nor to the shell that runs kbuild's commands.
PLAIN_PATH_RE = re.compile(r"[A-Za-z0-9_.+,@~/-]+")
# Characters that no quoting makes safe in a Makefile variable: make expands $, # starts a
# comment, a backslash escapes, a newline ends the line.
_MAKE_SYNTAX_RE = re.compile(r"[$#\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    objs: tuple[str, ...] = ()   # empty: built from <name>.c alone


@dataclass(frozen=True)
class BuildPlan:
    directory: Path
    own_rules: Path | None          # the module's own Kbuild/Makefile, when it has one
    modules: tuple[ModuleSpec, ...]  # empty when own_rules decides (known after the build)
    ccflags: tuple[str, ...] = ()

    @property
    def generated(self) -> bool:
        return self.own_rules is None


def check_name(name: str, where: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid module name {name!r} ({where})",
                         hint="a module name is a C identifier: letters, digits and _")
    return name


def own_rules(directory: Path) -> Path | None:
    kbuild = directory / "Kbuild"
    if kbuild.is_file():
        return kbuild
    for n in MAKEFILE_NAMES:
        f = directory / n
        if f.is_file() and _OBJ_M_RE.search(f.read_text(errors="replace")):
            return f
    return None


def own_makefile(directory: Path) -> Path | None:
    """The Makefile make would read in ``directory``, when it has rules of its own (a default
    target to run), not only kbuild's ``obj-m`` lines."""
    for n in MAKEFILE_NAMES:
        f = directory / n
        if f.is_file():
            return f if _RULE_RE.search(f.read_text(errors="replace")) else None
    return None


def build_way(plan: BuildPlan) -> str:
    """How ``plan`` is built: "dkms" (its dkms.conf), "own-makefile" (its Makefile's default
    target, kbuild ``M=`` when that builds no module) or "kbuild" (``M=`` on its Kbuild or on the
    generated one)."""
    if plan.own_rules is not None and plan.own_rules.name == DKMS_CONF:
        return "dkms"
    if plan.own_rules is not None and own_makefile(plan.directory) is not None:
        return "own-makefile"
    return "kbuild"


def shadow_chain(src: Path, levels: int = SHADOW_LEVELS) -> list[Path]:
    """``src`` and the directories above it that its build's shadow tree mirrors (never ``/``)."""
    chain = [src]
    while len(chain) <= levels and chain[-1].parent != chain[-1] and chain[-1].parent != Path("/"):
        chain.append(chain[-1].parent)
    return chain


def _ccflag(flag: str) -> str:
    """One ``ccflags`` entry as one compiler argument in ``ccflags-y``: quoted for the shell that
    runs kbuild's commands when it needs to be; refused when it holds make syntax."""
    bad = _MAKE_SYNTAX_RE.search(flag)
    if bad:
        raise UsageError(f"ccflags entry {flag!r} holds {bad.group()!r}, which cannot go into a Makefile",
                         hint="give flags without $, #, backslashes or control characters "
                              "(each entry is one compiler argument)")
    if not flag:
        raise UsageError("ccflags has an empty entry", hint="remove it")
    return flag if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", flag) else shlex.quote(flag)


def _include_flag(directory: Path, inc: str) -> str:
    """``-I`` for an include directory. Relative to ``$(src)`` where the shadow tree reaches (the
    Makefile then also works in the user's own tree), else absolute."""
    p = (directory / inc).resolve()
    if not p.is_dir():
        raise UsageError(f"include directory {inc!r} does not exist (relative to {directory})")
    rel = os.path.relpath(p, directory)
    ups = len([part for part in Path(rel).parts if part == ".."])
    if ups <= len(shadow_chain(directory)) - 1:
        path = "$(src)" if rel == "." else f"$(src)/{rel}"
        shown = rel
    else:
        path = shown = str(p)
    if not PLAIN_PATH_RE.fullmatch(shown):
        raise UsageError(f"include directory {inc!r} ({shown}) has characters kbuild cannot take in an "
                         f"include path (spaces, quotes, $, #, :, %, = ...)",
                         hint="rename it to letters, digits and ._+,@- only")
    return f"-I{path}"


def plan_build(directory: Path, *, name: str | None = None, sources: list[str] | None = None,
               ccflags: list[str] | None = None, include_dirs: list[str] | None = None) -> BuildPlan:
    directory = directory.resolve()
    # What goes into ccflags-y: make syntax never; every entry one argument.
    flags = [_ccflag(f) for f in ccflags or []]
    for inc in include_dirs or []:
        flags.append(_include_flag(directory, inc))
    # Own rules win unless the sources are listed explicitly; a [module] name alone only names
    # a generated module.
    rules = None if sources else own_rules(directory)
    if not sources and (directory / DKMS_CONF).is_file():
        # The dkms.conf decides what is built and how; listed sources would override it.
        rules = directory / DKMS_CONF
    if rules is not None:
        return BuildPlan(directory, rules, (), tuple(flags))
    if sources:
        files = []
        for s in sources:
            if not (directory / s).is_file():
                raise UsageError(f"source {s!r} listed in kharness.toml does not exist in {directory}")
            files.append(s)
    else:
        # A user-space program beside the module (a test.c with a main()) is no module source.
        files = sorted(p.name for p in directory.glob("*.c") if not has_main(p))
    if not files:
        raise UsageError(f"{directory} has no .c files and no Kbuild/Makefile with obj-m",
                         hint="point kharness at a directory holding your module's sources")
    stems = [f[:-2] for f in files]
    for s in stems:
        if not NAME_RE.match(s):
            raise UsageError(f"source file {s}.c has a name kbuild cannot use",
                             hint="rename it to letters, digits and _ only")
    roots = [s for s, f in zip(stems, files) if _ROOT_RE.search((directory / f).read_text(errors="replace"))]
    if name is None and len(files) == 1:
        mods = (ModuleSpec(stems[0]),)
    elif name is None and len(roots) > 1 and len(roots) == len(stems):
        mods = tuple(ModuleSpec(s) for s in stems)
    elif name is None and len(roots) > 1:
        raise UsageError(f"{directory} holds several modules ({', '.join(roots)}) and helper files "
                         f"({', '.join(s for s in stems if s not in roots)})",
                         hint="write a Kbuild file, or set [module] name and sources in kharness.toml")
    else:
        mod = name or re.sub(r"[^A-Za-z0-9_]", "_", directory.name)
        check_name(mod, "module name")
        if len(files) == 1 and stems[0] == mod:
            mods = (ModuleSpec(mod),)
        else:
            if mod in stems:
                raise UsageError(f"module {mod!r} would be built from several files, one of them {mod}.c",
                                 hint="kbuild cannot do that: set another [module] name in kharness.toml")
            mods = (ModuleSpec(mod, tuple(f"{s}.o" for s in stems)),)
    return BuildPlan(directory, None, mods, tuple(flags))


def comment_text(text: str) -> str:
    """``text`` made fit for a Makefile comment: a newline would end the comment (and start make
    code), a final backslash would continue it."""
    return "".join(ch if ch.isprintable() and ch != "\\" else "?" for ch in text)


class _MakefileTemplate(string.Template):
    """``@{name}`` placeholders (``$`` is make's own); ``@@`` is a literal ``@``. Filled in one
    pass: a value is never read for placeholders, and an unknown one is an error."""

    delimiter = "@"


@lru_cache(maxsize=1)
def _template() -> str:
    return (data_dir("module_templates") / "kbuild" / "Makefile.in").read_text()


def render_makefile(plan: BuildPlan) -> str:
    # Only names and flags plan_build checked go into make code; the directory name is named
    # in comments only.
    kbuild = []
    for m in plan.modules:
        kbuild.append(f"obj-m += {m.name}.o")
        if m.objs:
            kbuild.append(f"{m.name}-objs := {' '.join(m.objs)}")
    if plan.ccflags:
        kbuild.append(f"ccflags-y += {' '.join(plan.ccflags)}")
    text = _template()
    if not kbuild:   # no rules, no line for them (not an empty one)
        text = text.replace("\n@{kbuild}\n", "\n")
    dirname = comment_text(plan.directory.name)
    return _MakefileTemplate(text).substitute(version=__version__, dirname=dirname,
                                              dirname_arg=shlex.quote(dirname), kbuild="\n".join(kbuild))
