"""GitHub Actions workflow commands (``::error file=…,line=…::message``) for a run's problems.

GitHub reads these lines from a step's output and shows each as an annotation on the file and
line it names, in the pull request's diff too. Its escaping rules (actions/toolkit's command.ts):
in the message ``%``, CR and LF are percent-encoded; in a property also ``:`` and ``,``, which
would otherwise end the value. A file is named relative to the repository root
(``$GITHUB_WORKSPACE``); one outside it cannot be annotated, so its path moves into the message.
"""

from __future__ import annotations

import os
from pathlib import Path

from kharness.result.problems import Problem

# GitHub shows at most 10 errors and 10 warnings per step (50 per job) and drops the rest
# silently: past these, one line says how many more there were.
MAX_PER_SEVERITY = 10


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def repo_root(env: dict | None = None) -> Path:
    """Where annotated paths are relative to: the checkout on GitHub (``$GITHUB_WORKSPACE``), on
    GitLab ``$CI_PROJECT_DIR``, else the current directory."""
    env = os.environ if env is None else env
    return Path(env.get("GITHUB_WORKSPACE") or env.get("CI_PROJECT_DIR") or os.getcwd())


def relative(path: str, root: Path) -> str | None:
    """``path`` relative to ``root`` (both with links resolved), or None when it is outside."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    rel = os.path.relpath(real, top)
    return None if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def command(p: Problem, root: Path, prefix: str = "") -> str:
    """One workflow command for ``p``; ``prefix`` (a matrix cell's id) goes before its title."""
    props = []
    message = p.message
    rel = relative(p.file, root) if p.file else None
    if rel is not None:
        props.append(("file", rel))
        if p.line:
            props.append(("line", str(p.line)))
            if p.col:
                props.append(("col", str(p.col)))
    elif p.file:
        message = f"{p.where()}: {message}"
    props.append(("title", f"{prefix}: {p.title}" if prefix else p.title))
    head = ",".join(f"{k}={escape_property(v)}" for k, v in props)
    level = "error" if p.severity == "error" else "warning"
    return f"::{level} {head}::{escape_data(message)}"


def commands(items: list[tuple[str, Problem]], root: Path) -> list[str]:
    """The commands for ``items`` (``(prefix, problem)``: a matrix cell's id, or ``""``), at most
    :data:`MAX_PER_SEVERITY` of each level, then a notice counting what was left out."""
    out, left = [], 0
    shown = {"error": 0, "warning": 0}
    for prefix, p in items:
        level = "error" if p.severity == "error" else "warning"
        if shown[level] >= MAX_PER_SEVERITY:
            left += 1
            continue
        shown[level] += 1
        out.append(command(p, root, prefix))
    if left:
        out.append(f"::notice title={escape_property('kharness')}::{left} more problem(s) not annotated: "
                   f"see the result JSON or the step summary")
    return out
