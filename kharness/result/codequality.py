"""GitLab's code-quality report (``artifacts:reports:codequality``): a JSON array of issues, each
``{description, check_name, fingerprint, severity, location: {path, lines: {begin}}}``, for the
same problems the GitHub annotations show. GitLab requires a path and a line on every issue: a
problem with no location of its own is placed on the module's kharness.toml (or the module
directory) at line 1. The fingerprint is stable across runs for the same problem in the same place,
which is how GitLab tells new problems from old ones in a merge request.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kharness.result.annotations import relative
from kharness.result.problems import TOML, Problem

SEVERITY = {"finding": "critical", "infrastructure": "info", "usage": "info"}


def issue(p: Problem, root: Path, module_dir: Path, prefix: str = "") -> dict:
    if p.file:
        path, line = relative(p.file, root) or p.file, p.line or 1
    else:
        home = module_dir / TOML if (module_dir / TOML).is_file() else module_dir
        path, line = relative(str(home), root) or str(home), 1
    check = f"kharness.{p.kind}"
    description = f"{prefix + ': ' if prefix else ''}{p.title}: {p.message}"
    key = "\0".join((prefix, check, p.title, path, str(line), p.message))
    severity = SEVERITY.get(p.kind) or ("major" if p.severity == "error" else "minor")
    return {"description": description, "check_name": check,
            "fingerprint": hashlib.sha256(key.encode(errors="replace")).hexdigest(),
            "severity": severity, "location": {"path": path, "lines": {"begin": int(line)}}}


def write(path: Path, issues: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(issues, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
