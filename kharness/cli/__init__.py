"""The ``kharness`` command line (Typer).

Exit codes never lie: 0 the module passed, 1 the module failed, 2 usage or infrastructure error.

This module is the app: the global options, every command registered in the order ``--help``
lists them, and :func:`main`, the boundary that turns whatever escapes a command into one line
and exit 2. The commands live in modules named for what they do (``run``: run and watch,
``archive``: kernels and targets, ``templates``: new and makefile, ``matrix``, ``doctor``,
``build``: kernel and image build, ``cache``); each imports what it uses inside its function, so a command pays
only for its own imports (``python -X importtime -m kharness run ...`` shows them).
"""

from __future__ import annotations

import gc
import sys

import typer

from kharness import __version__, ui
from kharness.cli import archive, build, cache, doctor, guest, matrix, run, templates
from kharness.cli.common import error_line, show_traceback
from kharness.errors import KharnessError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
    help="Build, boot, load and check Linux kernel modules on real Debian kernels in QEMU.\n\n"
         "Exit codes: 0 passed, 1 the module failed, 2 usage or infrastructure error.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"kharness {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help="On an internal error, print its traceback "
                                                         "(every command also takes --verbose)."),
) -> None:
    ui.set_verbose(verbose)


app.command()(run.run)
app.command()(run.watch)
app.command()(archive.kernels)
app.command()(archive.targets)
app.command(help=templates.NEW_HELP)(templates.new)
app.command(help=templates.MAKEFILE_HELP)(templates.makefile)
app.command()(matrix.matrix)
app.command(help=doctor.HELP)(doctor.doctor)

kernel_app = typer.Typer(help="Kernels kharness builds itself (targets Debian has no kernel for, your own tree).",
                         no_args_is_help=True)
image_app = typer.Typer(help="Guest images (kernel + initramfs + device tree), built and cached.", no_args_is_help=True)
cache_app = typer.Typer(help="The content-addressed cache under ~/.cache/kharness.", no_args_is_help=True)
app.add_typer(kernel_app, name="kernel")
app.add_typer(image_app, name="image")
app.add_typer(cache_app, name="cache")
guest_app = typer.Typer(help="Debian guests in the background, reachable over SSH on 127.0.0.1 (test against "
                             "them with `kharness run --remote`).", no_args_is_help=True)
app.add_typer(guest_app, name="guest")
guest_app.command("up")(guest.guest_up)
guest_app.command("down")(guest.guest_down)
guest_app.command("ls")(guest.guest_ls)
kernel_app.command("build")(build.kernel_build)
image_app.command("build")(build.image_build)
cache_app.command("ls")(cache.cache_ls)
cache_app.command("verify")(cache.cache_verify)
cache_app.command("clean")(cache.cache_clean)


def main() -> None:
    """The boundary of every command: whatever escapes one is an error with exit 2 and one line,
    never a traceback with exit 1 (which means "the module failed"). KeyboardInterrupt is not an
    Exception: it keeps click's handling ("Aborted!"), or `run`'s own (exit 130)."""
    from kharness.unexpected import InternalError

    try:
        app()
    except KharnessError as e:  # commands handle their own; this is for one that does not
        error_line(str(e))
        sys.exit(e.exit_code)
    except Exception as e:
        internal = InternalError(e)
        error_line(str(internal))
        show_traceback(internal.traceback)
        sys.exit(internal.exit_code)
    finally:
        # The command is done and the process is about to end: the interpreter's last garbage
        # collections would walk every object the imports made (~20 ms of a restored run) to
        # free memory the exit frees anyway. Frozen, they are skipped; nothing else changes
        # (atexit handlers and the wait for background teardown still run).
        gc.freeze()


if __name__ == "__main__":
    main()
