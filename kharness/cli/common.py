"""What every command of the CLI shares: stdout, the one-line error, ``--verbose``, exits.

Light on purpose: every ``kharness`` command imports this and the command modules before it
parses its options (Typer reads the functions' signatures), so anything heavy here or at the top
of a command module is paid by every command. A command imports what it uses inside its function.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NoReturn

import typer

from kharness import ui
from kharness.errors import KharnessError
from kharness.kernels.debug import CHECKERS

if TYPE_CHECKING:
    from rich.console import Console

DEBUG_HELP = ("Boot a debug kernel kharness builds from Debian's linux-source with these checkers "
              "(comma-separated, or all): " + "; ".join(f"{k}: {v}" for k, v in CHECKERS.items()) +
              ". Built once (minutes), then cached.")

VERBOSE = typer.Option(False, "--verbose", help="On an internal error, print its traceback (it is always in "
                                                  "the result JSON).")


RUN_VERBOSE = typer.Option(False, "--verbose", "-v", help="Stream the guest's kernel console to stderr as it "
                                                         "runs; on an internal error, print its traceback.")


def out(stderr: bool = False) -> Console:
    """The console for results: stdout (paths never wrapped); progress and errors go to stderr
    (:mod:`kharness.ui`). Made when a command prints (rich costs an import), once per command.
    ``stderr``: the same on stderr, when stdout carries JSON (``--json -``)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, stderr=stderr)


def error_line(message: str) -> None:
    from rich.markup import escape

    # escape: messages quote TOML sections ("[gpio]", "[module.params]") that rich would eat as markup
    ui.console.print(f"[bold red]kharness: error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def die(e: KharnessError) -> NoReturn:
    error_line(str(e))
    raise typer.Exit(e.exit_code)


def show_traceback(text: str) -> None:
    """Under --verbose, an internal error's traceback (plain: rich would wrap and restyle it)."""
    if text and ui.verbose():
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
