"""``kharness new`` and ``kharness makefile``: a module directory from a template, and the kbuild
Makefile kharness generates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from kharness import ui
from kharness.cli.common import VERBOSE, die, out
from kharness.errors import KharnessError, UsageError


def _templates_help() -> str:
    from kharness.templates import TEMPLATES
    return "\n\n".join(f"[bold]{t.name}[/bold]: {t.summary}" for t in TEMPLATES.values())


NEW_HELP = ("Create a module directory from a template: C source, kbuild Makefile, kharness.toml "
            "with checks that prove it works, README.\n\nTemplates:\n\n" + _templates_help())
MAKEFILE_HELP = ("Write (or print with --stdout) the kbuild Makefile kharness would generate for DIR: "
                 "its sources, single or multi-file modules, several modules, ccflags and include "
                 "directories from kharness.toml. `kharness run` uses the same generator.\n\n"
                 "To start a module from a template instead (its Makefile included): "
                 "`kharness new NAME --template T`, with T one of:\n\n" + _templates_help())


def new(
    name: str = typer.Argument(..., help="Module name: a lower-case C identifier."),
    template: str = typer.Option("hello", "--template", "-t", help="Template (listed above)."),
    directory: Optional[Path] = typer.Option(None, "--dir", "-d", help="Where to create it (default: ./NAME)."),
    author: str = typer.Option("Your Name <you@example.com>", help="MODULE_AUTHOR."),
    description: str = typer.Option("", help="MODULE_DESCRIPTION (default: the template's summary)."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty directory."),
    verbose: bool = VERBOSE,
) -> None:
    from kharness.templates import TEMPLATES, create
    ui.set_verbose(verbose)
    try:
        desc = description or (TEMPLATES[template].summary if template in TEMPLATES else "")
        d = directory or Path(name)
        files = create(template, name, d, author=author, description=desc[:1].upper() + desc[1:], force=force)
    except KharnessError as e:
        die(e)
    console = out()
    console.print(f"created {d}/ from the {template} template: " + ", ".join(f.name for f in files))
    console.print(f"next: kharness run {d}")


def makefile(
    directory: Path = typer.Argument(..., help="The module directory."),
    stdout: bool = typer.Option(False, "--stdout", help="Print it instead of writing DIR/Makefile."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing Makefile."),
    verbose: bool = VERBOSE,
) -> None:
    from kharness.build.makefile import plan_build, render_makefile
    from kharness.modconfig import load_config
    ui.set_verbose(verbose)
    try:
        if not directory.is_dir():
            raise UsageError(f"module directory {directory} does not exist")
        config = load_config(directory)
        plan = plan_build(directory, name=config.name, sources=list(config.sources) or None,
                          ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
        if not plan.generated:
            if not (stdout or force):
                raise UsageError(f"{directory} has its own build rules ({plan.own_rules.name}); kharness uses them",
                                 hint="--stdout prints what kharness would generate instead; --force replaces them")
            # What kharness would generate from the sources alone.
            plan = plan_build(directory, name=config.name, sources=sorted(p.name for p in directory.glob("*.c")),
                              ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
        text = render_makefile(plan)
        if stdout:
            sys.stdout.write(text)
            return
        target = directory / "Makefile"
        if target.exists() and not force:
            raise UsageError(f"{target} exists", hint="--force to overwrite, or --stdout to print")
        target.write_text(text)
    except KharnessError as e:
        die(e)
    out().print(f"wrote {target} (" + ", ".join(m.name + (f" from {len(m.objs)} files" if m.objs else "")
                                               for m in plan.modules) + ")")
