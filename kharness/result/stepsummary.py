"""A run (or a matrix) as GitHub-flavoured Markdown, for a job's step summary
(``$GITHUB_STEP_SUMMARY``): a status line, tables of phases, checks and findings, the problems
with their locations, and for a matrix its grid of targets x kernels.

Everything that came from the module or the kernel goes through :func:`cell`: one line, ``|``
escaped, HTML's ``<``/``>``/``&`` as entities (the summary renders HTML), capped in length.
"""

from __future__ import annotations

from pathlib import Path

from kharness.result.annotations import relative
from kharness.result.problems import Problem

MAX_CELL = 200
MAX_ROWS = 50


def cell(text: object, limit: int = MAX_CELL) -> str:
    s = " ".join(str(text if text is not None else "").split())
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows[:MAX_ROWS]]
    if len(rows) > MAX_ROWS:
        out.append(f"| … {len(rows) - MAX_ROWS} more |" + " |" * (len(head) - 1))
    return out + [""]


def _where(p: Problem, root: Path) -> str:
    if not p.file:
        return ""
    rel = relative(p.file, root) or p.file
    loc = ":".join(str(x) for x in (rel, p.line, p.col) if x)
    return f"`{cell(loc)}`"


def problem_rows(items: list[Problem], root: Path) -> list[list[str]]:
    return [[p.severity, _where(p, root), cell(p.title), cell(p.message)] for p in items]


def run_markdown(result: dict, items: list[Problem], root: Path) -> str:
    status = str(result.get("status", "error")).upper()
    release = (result.get("kernel") or {}).get("release") or result.get("kernel_wanted", "")
    accel = f", {result['accelerator']}" if result.get("accelerator") else ""
    md = [f"### kharness: **{status}**: `{cell(result.get('module_dir'))}` on {cell(result.get('target'))} / "
          f"{cell(release)} ({float(result.get('duration') or 0):.1f}s{accel})", ""]
    if result.get("summary"):
        md += [cell(result["summary"], 500), ""]
    md += _table(["phase", "status", "time", "what happened"],
                 [[p["name"], p.get("status", ""), f"{float(p.get('duration') or 0):.1f}s", cell(p.get("message"))]
                  for p in result.get("phases") or ()])
    checks = result.get("checks") or []
    if checks:
        md += ["**Checks**", ""] + _table(
            ["check", "status", "time", "message"],
            [[cell(c.get("name")), c.get("status", ""), f"{float(c.get('duration') or 0):.1f}s",
              cell(c.get("message"))] for c in checks])
    findings = result.get("findings") or []
    if findings:
        md += ["**Findings**", ""] + _table(
            ["kind", "phase", "blocking", "module", "summary"],
            [[cell(f.get("kind")), cell(f.get("phase")), "yes" if f.get("blocking") else "no",
              cell(f.get("module") or ""), cell(f.get("summary"))] for f in findings])
    if items:
        md += ["**Problems**", ""] + _table(["", "where", "what", "message"], problem_rows(items, root))
    return "\n".join(md) + "\n"


def matrix_markdown(summary: dict, failed: dict[str, list[Problem]], root: Path) -> str:
    """``summary`` as kharness.matrix.report writes it; ``failed``: cell id -> its problems."""
    cells = summary.get("cells") or []
    counts = summary.get("counts") or {}
    targets = list(dict.fromkeys(c["target"] for c in cells))
    kernels = sorted(dict.fromkeys(c["kernel"] for c in cells),
                     key=lambda s: tuple(int(x) if x.isdigit() else 0 for x in s.split(".")))
    by = {(c["target"], c["kernel"]): c for c in cells}
    verdict = "FAIL" if counts.get("fail") else "ERROR" if counts.get("error") else "PASS"
    md = [f"### kharness matrix: **{verdict}**: `{cell(summary.get('module_dir'))}`: "
          f"{counts.get('pass', 0)} passed, {counts.get('fail', 0)} failed, {counts.get('error', 0)} error(s), "
          f"{counts.get('skipped', 0)} skipped in {float(summary.get('wall_seconds') or 0):.0f}s", ""]
    rows = []
    for t in targets:
        row = [t]
        for k in kernels:
            c = by.get((t, k))
            if c is None:
                row.append("–")
                continue
            new = " (newly broken)" if c.get("change") == "newly broken" else ""
            row.append(f"{'**' + c['status'].upper() + '**' if c['status'] != 'pass' else 'pass'} "
                       f"{float(c.get('duration') or 0):.0f}s{new}")
        rows.append(row)
    md += _table(["target \\ kernel", *kernels], rows)
    bad = [c for c in cells if c["status"] in ("fail", "error")]
    if bad:
        md += ["**Failed cells**", ""] + _table(["cell", "status", "summary"],
                                                [[c["id"], c["status"], cell(c.get("summary"))] for c in bad])
        rows = [[c["id"], *r] for c in bad for r in problem_rows(failed.get(c["id"], []), root)]
        if rows:
            md += ["**Problems**", ""] + _table(["cell", "", "where", "what", "message"], rows)
    return "\n".join(md) + "\n"


def append(path: Path, markdown: str) -> None:
    """Append (a job's steps share one summary file, each adding its part)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown + "\n")
