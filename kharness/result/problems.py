"""A result's problems as CI systems show them: one item per thing to point at, with the file and
line when kharness knows them. GitHub annotations, the step summary and GitLab's code-quality report
are all written from these items, so the three always tell the same story.

* a compiler or modpost diagnostic: the user's file:line:col (warnings as warnings);
* a blocking kernel finding: the module source line the report points to, when the caller could
  resolve it (``locate``, see kharness.build.sourceline), else no location;
* a failed check: the line of kharness.toml that defined it;
* a failed phase none of those explains (a ``[load] expect_dmesg`` that did not match, an rmmod
  that failed), and a usage or infrastructure error: what happened, with kharness.toml's line
  when an expectation there is the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kharness.result.tomllines import TomlLines

TOML = "kharness.toml"
TABSTOP = 8   # gcc's -ftabstop default
# A finding's location: (file, line) in the user's sources, or None.
Locate = Callable[[dict], "tuple[str, int] | None"]


@dataclass(frozen=True)
class Problem:
    severity: str            # error | warning
    kind: str                # build | finding | check | phase | infrastructure | usage
    title: str               # short: "compile error", "kernel null_deref", "check failed: NAME"
    message: str
    file: str | None = None  # absolute (the user's own file)
    line: int | None = None
    col: int | None = None

    def where(self) -> str:
        return ":".join(str(x) for x in (self.file, self.line, self.col) if x is not None)


def char_column(file: str, line: int, display: int) -> int:
    """gcc counts columns as displayed, a tab reaching the next multiple of 8; an editor (and
    GitHub) counts characters. The character whose display column is ``display``, 1-based; the
    given column when the file cannot be read."""
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            for n, text in enumerate(f, 1):
                if n == line:
                    break
            else:
                return display
    except OSError:
        return display
    shown = 0
    for i, ch in enumerate(text.rstrip("\n")):
        if shown + 1 >= display:
            return i + 1
        shown = (shown // TABSTOP + 1) * TABSTOP if ch == "\t" else shown + 1
    return display


def problems(result: dict, module_dir: Path, locate: Locate | None = None) -> list[Problem]:
    """Every problem of ``result`` (a result document, as ``Result.to_dict()`` or its JSON),
    errors before warnings, each in the order the run met it."""
    out: list[Problem] = []
    if result.get("status") == "error":
        err = result.get("error") or {}
        kind = err.get("kind", "infrastructure")
        out.append(Problem("error", kind, f"kharness: {kind} error", err.get("message") or result.get("summary", "")))
    toml_path = module_dir / TOML
    lines = TomlLines.of(toml_path) if toml_path.is_file() else None
    explained: set[str] = set()

    for d in (result.get("build") or {}).get("diagnostics") or ():
        sev = d.get("severity")
        if sev not in ("error", "warning"):
            continue   # notes belong to the diagnostic before them, whose message says enough
        what = "modpost" if d.get("tool") == "modpost" else "compile"
        col = d.get("column")
        if col and d.get("file") and d.get("line"):
            col = char_column(d["file"], d["line"], col)
        out.append(Problem(sev, "build", f"{what} {sev}", d.get("message", ""), d.get("file"), d.get("line"), col))
        if sev == "error":
            explained.add("build")

    # Findings that do not block (boot noise, another module's trouble) are recorded, not shown.
    blocking = [f for f in result.get("findings") or () if f.get("blocking")]
    for f in blocking:
        if f.get("kind") == "taint" and len(blocking) > 1:
            continue   # the D or W flag of a report already shown: the report is the news
        where = locate(f) if locate else None
        blamed = f" in module {f['module']}" if f.get("module") else ""
        msg = f"{f.get('summary', '')} ({f.get('phase', '?')} phase{blamed})"
        out.append(Problem("error", "finding", f"kernel {f.get('kind')}", msg,
                           where[0] if where else None, where[1] if where else None))
        explained.add(f.get("phase") or "")

    for i, c in enumerate(result.get("checks") or ()):
        if c.get("status") not in ("fail", "error"):
            continue
        line = lines.check(i, c.get("name", "")) if lines else None
        msg = c.get("message") or f"exit status {c.get('rc')}, expected {c.get('expect_rc')}"
        out.append(Problem("error", "check", f"check failed: {c.get('name')}", msg,
                           str(toml_path) if line else None, line))
        explained.add("check")

    for p in result.get("phases") or ():
        if p.get("status") != "fail" or p.get("name") in explained:
            continue
        file = line = None
        for key in ("expect_dmesg", "expect_errno"):
            if key in (p.get("message") or "") and lines and lines.key(p["name"], key):
                file, line = str(toml_path), lines.key(p["name"], key)
                break
        out.append(Problem("error", "phase", f"{p['name']} failed", p.get("message") or result.get("summary", ""),
                           file, line))
    return sorted(out, key=lambda x: x.severity != "error")
