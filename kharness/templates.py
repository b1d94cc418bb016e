"""Module templates: ``kharness new NAME --template T`` renders ``module_templates/T/`` (and
``module_templates/_common/``) with jinja2 into a complete, buildable module directory; its
Makefile is the one ``kharness makefile`` and ``kharness run`` generate (one generator).

File names in a template say ``NAME`` where the module's name goes (``NAME.c.j2`` ->
``mymod.c``). Every value that reaches a generated file is validated first, so nothing a user
types can break out of a C string, a comment or a TOML string.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

from kharness.errors import UsageError
from kharness.paths import data_dir


@dataclass(frozen=True)
class Template:
    name: str
    summary: str
    objs: tuple[str, ...] = ()          # multi-file: the objects after NAME_ (e.g. main, util)


TEMPLATES = {t.name: t for t in (
    Template("hello", "init and exit, with license, author and description"),
    Template("params", "module_param of int, charp and bool, and module_param_array, with descriptions"),
    Template("procfs", "a /proc file: seq_file read, write with copy_from_user, a mutex"),
    Template("sysfs", "kobject attributes under /sys/kernel: a read/write value and a read-only counter"),
    Template("chardev", "a character device: class and device node, read/write, exclusive open, "
                        "ioctls in a header shared with user space"),
    Template("gpio-irq", "a GPIO input interrupt with a threaded handler driving an output line "
                         "(descriptor API), ready for the kharness virtual GPIO controller"),
    Template("multifile", "one module from several source files (NAME-objs)", ("main", "util")),
    Template("aix-kext", "an AIX kernel extension's layout on Linux: extinit/extproc, copyin/copyout, "
                         "a lock, a /proc entry point in place of a sysent[] system call"),
)}

_C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
    "volatile", "while", "bool", "true", "false", "module", "init", "current",
}
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,54}$")  # MODULE_NAME_LEN is 56 with its NUL
# Printable, and nothing that ends a C string or comment, a TOML string, or a Makefile line.
_TEXT_RE = re.compile(r'^[^\x00-\x1f\x7f"\\`$]*$')


def help_text() -> str:
    return "\n".join(f"{t.name:10} {t.summary}" for t in TEMPLATES.values())


def check_module_name(name: str) -> str:
    if not NAME_RE.match(name) or name in _C_KEYWORDS or keyword.iskeyword(name):
        raise UsageError(f"invalid module name {name!r}",
                         hint="a lower-case C identifier of at most 55 characters: letters, digits "
                              "and _, not starting with a digit, not a C keyword")
    return name


def _check_text(what: str, value: str) -> str:
    if not _TEXT_RE.match(value) or "*/" in value or len(value) > 200:
        raise UsageError(f"{what} {value!r} cannot go into the generated files",
                         hint='use printable text without quotes, backslashes, $, ` or "*/", at most 200 characters')
    return value


def render(template: str, name: str, author: str, description: str) -> dict[str, str]:
    """{relative path: content} of the module directory ``template`` makes for ``name``."""
    if template not in TEMPLATES:
        raise UsageError(f"unknown template {template!r}", hint=f"one of: {', '.join(TEMPLATES)}")
    t = TEMPLATES[template]
    check_module_name(name)
    values = {"name": name, "template": template, "summary": t.summary,
              "author": _check_text("author", author), "description": _check_text("description", description)}
    # Here, not at the top: every `kharness` command lists TEMPLATES in its help, only `new` renders.
    import jinja2

    from kharness.build.makefile import BuildPlan, ModuleSpec, render_makefile

    root = data_dir("module_templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(root / template), str(root / "_common")]),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)
    names = {p.name for p in (root / template).glob("*.j2")}
    names |= {p.name for p in (root / "_common").glob("*.j2")}
    out = {}
    for n in sorted(names):
        path = n[:-3].replace("NAME", name)
        out[path] = env.get_template(n).render(**values)
    module = ModuleSpec(name, tuple(f"{name}_{o}.o" for o in t.objs))
    out["Makefile"] = render_makefile(BuildPlan(Path(name), None, (module,)))
    return dict(sorted(out.items()))


def create(template: str, name: str, directory: Path, *, author: str, description: str,
           force: bool = False) -> list[Path]:
    files = render(template, name, author, description)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} already exists and is not empty", hint="choose another --dir, or --force")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for rel, text in files.items():
        p = directory / rel
        p.write_text(text)
        written.append(p)
    return written
