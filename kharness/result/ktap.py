"""A run's result (or a matrix's) as KTAP version 1, the kernel's own test output format
(Documentation/dev-tools/ktap.rst), laid out as kunit_tool's parser reads it.

One run::

    KTAP version 1
    1..6
    ok 1 build
    ok 2 image
    ok 3 boot
      KTAP version 1
      # Subtest: load
      1..1
      ok 1 hello
    ok 4 load
      KTAP version 1
      # Subtest: check
      1..2
      # expected stdout '^5$', got '7'
      not ok 1 myint is 5
      ok 2 only on rpi2 # SKIP ...
    not ok 5 check
    ok 6 unload # SKIP not reached
    # kharness 0.1.0: examples/hello on x86_64 / 6.1.0-50-amd64 (tcg)
    # verdict: fail: check: ...

A phase is a test; load and unload hold a subtest per module under test, check one per check,
and the phase whose kernel log printed KUnit suites holds those suites (their cases as their
subtests). Findings and messages are ``#`` diagnostics right before the result line of the test
they belong to (as KUnit prints them). The verdict is the top level: a run that failed or erred
always has a ``not ok`` phase. A matrix is one top-level test per cell with its run nested.

Works on the JSON document (``Result.to_dict()`` or a cell's result.json), so the matrix writes
what its cells' own ``kharness run`` wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kharness import __version__
from kharness.result.status import PHASES

INDENT = "  "          # one level, as the spec asks
REPORT_LINES = 60      # of a finding's report, in a diagnostic; the result file has all of it
OUTPUT_LINES = 20      # of a failed check's stdout and stderr
# Lines kunit_tool stops reading at (its KTAP_END): a finding may quote them; they are reworded.
_END = ((re.compile(r"List of all partitions:"), "List of all partitions -"),
        (re.compile(r"Kernel panic - not syncing: VFS:"), "Kernel panic - not syncing (VFS):"),
        (re.compile(r"reboot: System halted"), "reboot (System halted)"))
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")
_MODULE_STEP = re.compile(r"\b(?:insmod|rmmod) (\w+)|\b(\w+) is (?:not|still) listed in /proc/modules")


@dataclass
class Node:
    """One test of the document: ``status`` pass | fail | error | skipped."""

    name: str
    status: str
    reason: str = ""                       # a skip's or an error's reason
    diagnostics: list[str] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)


def name_of(text: str) -> str:
    """A test description KTAP allows: one line, no ``#``, not empty."""
    out = " ".join(_CONTROL.sub(" ", str(text)).replace("#", "no.").split())
    while out.startswith("- "):   # "ok 1 - name" is "name" to every reader
        out = out[2:]
    return out or "unnamed"


def diagnostic(text: str) -> list[str]:
    """``text`` as ``#`` diagnostic lines that no KTAP reader takes for anything else."""
    lines = []
    for line in _CONTROL.sub("", str(text).replace("\t", "    ")).splitlines() or [""]:
        for rx, instead in _END:
            line = rx.sub(instead, line)
        # "# Subtest: x" is a header to kunit_tool: a quoted one gets a space in front.
        lines.append(("#  " if line.startswith("Subtest:") else "# ") + line if line.strip() else "#")
    return lines


def _tail(text: str, n: int) -> str:
    lines = text.rstrip("\n").splitlines()
    return "\n".join((["[...]"] if len(lines) > n else []) + lines[-n:])


# -- a run's tree ------------------------------------------------------------------------------

def _finding_lines(f: dict) -> list[str]:
    blocking = "" if f.get("blocking", True) else " (recorded, not held against the module)"
    out = diagnostic(f"{f.get('kind')}{blocking}: {f.get('summary', '')}")
    report = (f.get("report") or "").splitlines()
    if report:
        shown = report[:REPORT_LINES]
        more = [f"[... {len(report) - REPORT_LINES} more lines in the result file ...]"] if len(report) > REPORT_LINES else []
        out += diagnostic("\n".join("  " + line for line in shown + more))
    return out


def _kunit_nodes(doc: dict, phase: str) -> list[Node]:
    nodes = []
    for suite in doc.get("kunit") or []:
        if suite.get("phase") != phase:
            continue
        cases = []
        for c in suite.get("cases", []):
            params = [Node(name_of(p["name"]), _kunit_status(p["status"]), p.get("reason", ""),
                           diagnostic(p["log"]) if p.get("log") else []) for p in c.get("params", [])]
            diags = diagnostic(c["log"]) if c.get("log") else []
            if c["status"] == "crashed":
                diags += diagnostic("crashed: the case printed no result line")
            cases.append(Node(name_of(c["name"]), _kunit_status(c["status"]), c.get("reason", ""), diags, params))
        diags = diagnostic(suite["log"]) if suite.get("log") else []
        nodes.append(Node(name_of(suite["name"]), _kunit_status(suite["status"]), "", diags, cases))
    return nodes


def _kunit_status(s: str) -> str:
    return {"crashed": "fail"}.get(s, s)


def _module_nodes(doc: dict, phase: dict) -> list[Node]:
    """A subtest per module under test: which one failed is read from the phase's message (the
    insmod/rmmod it names) or its blocking finding's module; the ones before it passed, the ones
    after it were not reached."""
    names = [m["name"] for m in doc.get("modules") or []]
    status = phase["status"]
    expected = doc.get("expected_load_failures") or {}
    if status == "fail" and phase.get("message", "").startswith("KUnit: "):
        nodes = [Node(n, "pass") for n in names]    # they loaded: their suites carry the failure
    elif status == "pass" or status == "skipped":
        why = "not reached" if status == "skipped" else ""
        nodes = [Node(n, status, why) for n in names]
    else:
        m = _MODULE_STEP.search(phase.get("message", ""))
        blamed = (m.group(1) or m.group(2)) if m else next(
            (f.get("module") for f in doc.get("findings", []) if f.get("phase") == phase["name"]
             and f.get("blocking") and f.get("module") in names), None)
        if blamed not in names:
            nodes = [Node(n, status, diagnostics=diagnostic(f"the {phase['name']} phase failed")) for n in names]
        else:
            order = names if phase["name"] == "load" else names[::-1]   # unloaded in reverse
            at = order.index(blamed)
            nodes = [Node(n, "pass" if i < at else status if i == at else "skipped", "" if i <= at else "not reached")
                     for i, n in enumerate(order)]
            if phase["name"] != "load":
                nodes.reverse()
    for node in nodes:
        e = expected.get(node.name)
        if e and phase["name"] == "load":
            node.diagnostics += diagnostic(f"insmod had to fail with {e['expected']}: got {e.get('got')}")
    return nodes


def _check_nodes(doc: dict) -> list[Node]:
    nodes = []
    for c in doc.get("checks", []):
        if c["status"] == "skipped":
            nodes.append(Node(name_of(c["name"]), "skipped", c.get("message") or "skipped"))
            continue
        diags = []
        if c["status"] != "pass":
            diags += diagnostic(c.get("message") or f"exit status {c.get('rc')}, expected {c.get('expect_rc')}")
            diags += diagnostic(f"$ {c.get('command', '')}")
            for stream in ("stdout", "stderr"):
                if (c.get(stream) or "").strip():
                    diags += diagnostic(f"{stream}:\n" + _tail(c[stream], OUTPUT_LINES))
        if c.get("background"):
            diags += diagnostic(f"background program: {c['background'].get('ended')}")
        nodes.append(Node(name_of(c["name"]), c["status"], "", diags))
    return nodes


def run_nodes(doc: dict) -> list[Node]:
    """The run's phases as tests (with their subtests)."""
    status = doc.get("status", "error")
    summary = doc.get("summary", "")
    nodes = []
    for p in doc.get("phases") or [{"name": n, "status": "skipped"} for n in PHASES]:
        name, st = p["name"], p["status"]
        diags = diagnostic(p["message"]) if p.get("message") and st != "skipped" else []
        for f in doc.get("findings", []):
            if f.get("phase") == name:
                diags += _finding_lines(f)
        children = []
        if name in ("load", "unload"):
            children = _module_nodes(doc, p)
        elif name == "check":
            children = _check_nodes(doc)
        children += _kunit_nodes(doc, name)
        reason = ""
        if st == "skipped":
            reason = summary.removeprefix("skipped: ") if status == "skipped" else "not reached"
        elif st == "error":
            reason = p.get("message") or summary
        nodes.append(Node(name, st, reason, diags, children))
    stopped = stopped_at(doc)
    if stopped is not None:
        n = next(n for n in nodes if n.name == stopped)
        n.status, n.reason = ("error" if status == "error" else "fail"), ""
        err = doc.get("error") or {}
        n.diagnostics += diagnostic(f"{err['kind']} error: {err.get('message', '')}" if err.get("kind") else summary)
        n.children = [c if c.status != "skipped" else Node(c.name, "skipped", "not reached") for c in n.children]
    return nodes


def stopped_at(doc: dict) -> str | None:
    """For a run that failed or erred with no phase marked so (it stopped before the build, or
    between phases): the first phase it did not reach, which carries the verdict in KTAP and
    KCIDB. None when a phase already says it."""
    phases = doc.get("phases") or [{"name": n, "status": "skipped"} for n in PHASES]
    if doc.get("status", "error") not in ("fail", "error") or any(p["status"] in ("fail", "error") for p in phases):
        return None
    return next((p["name"] for p in phases if p["status"] == "skipped"), phases[-1]["name"])


def run_head(doc: dict) -> list[str]:
    kernel = (doc.get("kernel") or {}).get("release") or doc.get("kernel_wanted", "")
    accel = f" ({doc['accelerator']})" if doc.get("accelerator") else ""
    return (diagnostic(f"kharness {__version__}: {doc.get('module_dir', '')} on {doc.get('target', '')} / "
                       f"{kernel}{accel}")
            + diagnostic(f"verdict: {doc.get('status', 'error')}: {doc.get('summary', '')}"))


# -- serialising -------------------------------------------------------------------------------

def _result_line(ok: bool, number: int, node: Node) -> str:
    word = "ok" if ok else "not ok"
    directive = {"skipped": "SKIP", "error": "ERROR"}.get(node.status)
    if directive:
        reason = " ".join(_CONTROL.sub(" ", node.reason).split())
        return f"{word} {number} {node.name} # {directive} {reason}".rstrip()
    return f"{word} {number} {node.name}"


def _unclash(node: Node) -> None:
    """kunit_tool ends a parent at a result line that bears its name: a child named like its
    parent (a module called ``load``, a check called ``check``) is renamed."""
    for c in node.children:
        if c.name == node.name:
            c.name = f"{c.name} (in {node.name})"
        _unclash(c)


def _emit(node: Node, number: int, depth: int, out: list[str]) -> None:
    pad = INDENT * depth
    if node.children:
        sub = pad + INDENT
        out += [f"{sub}KTAP version 1", f"{sub}# Subtest: {node.name}", f"{sub}1..{len(node.children)}"]
        for i, c in enumerate(node.children, 1):
            _emit(c, i, depth + 1, out)
    out += [pad + d for d in node.diagnostics]
    out.append(pad + _result_line(node.status in ("pass", "skipped"), number, node))


def document(nodes: list[Node], tail: list[str] = ()) -> str:
    """A KTAP v1 document: ``nodes`` at the top level, then the ``tail`` diagnostics."""
    out = ["KTAP version 1", f"1..{len(nodes)}"]
    for i, n in enumerate(nodes, 1):
        _unclash(n)
        _emit(n, i, 0, out)
    return "\n".join(out + list(tail)) + "\n"


def run_document(doc: dict) -> str:
    """One run's KTAP (``kharness run --ktap``)."""
    return document(run_nodes(doc), run_head(doc))


def cell_node(cell_id: str, status: str, summary: str, doc: dict | None) -> Node:
    """A matrix cell: its run nested (when its result file could be read), its verdict as its
    result line."""
    reason = summary if status in ("skipped", "error") else ""
    if doc is None:
        return Node(name_of(cell_id), status, reason, diagnostic(summary) if status == "fail" else [])
    return Node(name_of(cell_id), status, reason, run_head(doc), run_nodes(doc))


def matrix_document(module_dir: str, cells: list[Node]) -> str:
    """A matrix's KTAP (``kharness matrix --ktap``): one top-level test per cell."""
    counts = {s: sum(1 for c in cells if c.status == s) for s in ("pass", "fail", "error", "skipped")}
    return document(cells, diagnostic(f"kharness {__version__} matrix: {module_dir}: "
                                      + ", ".join(f"{v} {k}" for k, v in counts.items())))
