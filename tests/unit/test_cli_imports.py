"""The command line is a package of command modules, and each command imports what it uses: the
run path (the CLI, the runner and the result writers, as a restored `kharness run` imports them)
loads no template engine, no Debian-archive parser, no HTTP client, no QMP client, no
decompressor and no progress bars; those are imported where a download, an unpack, a snapshot
save or a live terminal needs them. Checked in a fresh interpreter (what a test imported earlier
would otherwise hide); no timing, only which modules are there."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]

# Each is ~5-15 ms of a restored run's start-up, and the run does not use it.
NOT_ON_THE_RUN_PATH = (
    "jinja2",            # the kbuild Makefile is filled in without it (build/makefile.py)
    "debian.deb822",     # cached indices are JSON; the apt sources are read by debian/mirror.py
    "debian.debfile",    # only unpacking a .deb
    "tarfile",
    "asyncio",           # QMP: only saving a snapshot
    "qemu.qmp",
    "urllib.request",    # only a download
    "http.client",
    "email",
    "zstandard",         # only unpacking a kernel's modules
    "rich.progress",     # only a live terminal's bars
)


def modules_after(code: str) -> set[str]:
    """sys.modules of a fresh interpreter (run from the repository, as `python -m kharness` is)
    after ``code``."""
    p = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return set(p.stdout.split())


def test_the_run_path_imports_only_what_a_restored_run_uses():
    loaded = modules_after("import kharness.cli, kharness.runner, kharness.result.writers")
    assert "kharness.runner" in loaded
    assert sorted(m for m in NOT_ON_THE_RUN_PATH if m in loaded) == []


def test_the_cli_alone_imports_no_command_s_work():
    """What every command (and --help, --version) pays before it parses its options."""
    loaded = modules_after("import kharness.cli")
    heavy = ("kharness.runner", "kharness.result.writers", "kharness.matrix", "rich.table", "pexpect",
             "elftools", "debian", *NOT_ON_THE_RUN_PATH)
    assert sorted(m for m in heavy if m in loaded) == []


def listed_commands(*argv: str) -> list[str]:
    """The command names `kharness ARGV --help` lists (its Commands panel)."""
    from kharness.cli import app

    out = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "200"}).output
    panel = out.split("Commands", 1)[1]
    return [line.split()[1] for line in panel.splitlines() if line.startswith("│ ") and line[2:3].strip()]


def test_commands_are_listed_in_their_order():
    assert listed_commands() == ["run", "watch", "kernels", "targets", "new", "makefile", "matrix", "doctor", "kernel", "image", "cache", "guest"]


@pytest.mark.parametrize("group,commands", [("kernel", ["build"]), ("image", ["build"]),
                                            ("cache", ["ls", "verify", "clean"]), ("guest", ["up", "down", "ls"])])
def test_command_groups_keep_their_commands(group, commands):
    assert listed_commands(group) == commands
