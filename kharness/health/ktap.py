"""A KTAP reader (Documentation/dev-tools/ktap.rst), with the semantics of the kernel's own
parser (tools/testing/kunit/kunit_parser.py): version line, plan, ``ok N name`` / ``not ok N
name``, the ``# SKIP`` directive, ``# Subtest: name`` headers, nested subtests, and diagnostic
lines before a result line belonging to that test.

Two modes, one tree (:class:`KtapTest`):

* ``strict`` (:func:`parse`): a document kharness wrote must be exactly KTAP v1 - version and
  plan at every level, numbers 1..N, as many tests as planned, every subtest indented deeper than
  its parent and closed by a result line naming it, a parent that is ``ok`` has no failed
  subtest, only ``#`` diagnostics, and no line kunit_tool would stop reading at. Anything else is
  a :class:`KtapError` naming the line.
* lenient (:func:`kunit_suites`): KUnit output in a kernel log, among other kernel messages, maybe
  cut short by a crash. Unknown lines are diagnostics; a test that never printed its result line
  is ``crashed``, as kunit_tool says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kharness.health.headlines import strip_prefix

VERSION_RE = re.compile(r"(K?TAP) version ([0-9]+)")
HEADER_RE = re.compile(r"# Subtest: (.*)")
PLAN_RE = re.compile(r"1\.\.([0-9]+)")
# The description holds no "#": what follows " # " is a directive and its reason (or a comment).
RESULT_RE = re.compile(r"(ok|not ok) ([0-9]+)(?: (?:- )?([^#]*?))?(?: #(?: (.*)|)?)?")
# kunit_tool stops reading a log at these lines (its KTAP_END): a document must not hold them.
END_RE = re.compile(r"List of all partitions:|Kernel panic - not syncing: VFS:|reboot: System halted")
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")
STATUSES = ("pass", "fail", "skipped", "crashed")


class KtapError(ValueError):
    """A document that is not strict KTAP v1: which line, and why."""


@dataclass
class KtapTest:
    """One test: a leaf (a result line) or a parent (version, plan, subtests, result line)."""

    name: str = ""
    status: str = "crashed"      # pass | fail | skipped | crashed (no result line was printed)
    number: int = 0
    directive: str = ""          # SKIP, TODO, XFAIL, TIMEOUT, ERROR
    reason: str = ""             # what follows the directive (or the "#" of a result line)
    log: list[str] = field(default_factory=list)      # diagnostic lines that belong to it
    subtests: list[KtapTest] = field(default_factory=list)
    plan: int | None = None
    version: str = ""            # a parent's version line

    def statuses(self) -> dict:
        """``{name: status}`` of its subtests, nested as ``{name: (status, {...})}`` for parents."""
        return {t.name: (t.status, t.statuses()) if t.subtests else t.status for t in self.subtests}


@dataclass
class _Line:
    no: int
    indent: int
    text: str
    kind: str     # version | header | plan | result | end | diag | blank | unknown
    match: re.Match | None = None
    tabs: bool = False
    raw: str = ""

    def at(self, indent: int) -> str:
        """The line less its level's indentation (a diagnostic keeps its own beyond that)."""
        return self.raw[indent:] if 0 < indent <= self.indent else self.text


def _line(no: int, raw: str) -> _Line:
    raw = raw.rstrip()
    text = raw.lstrip(" \t")
    indent = len(raw) - len(text)
    tabs = "\t" in raw[:indent]
    for kind, rx in (("version", VERSION_RE), ("header", HEADER_RE), ("plan", PLAN_RE), ("result", RESULT_RE)):
        m = rx.fullmatch(text)
        if m:
            return _Line(no, indent, text, kind, m, tabs, raw)
    if END_RE.search(text):
        return _Line(no, indent, text, "end", None, tabs, raw)
    kind = "blank" if not text else "diag" if text.startswith("#") else "unknown"
    return _Line(no, indent, text, kind, None, tabs, raw)


class _Reader:
    def __init__(self, lines: list[_Line], strict: bool):
        self.lines = lines
        self.i = 0
        self.strict = strict

    def peek(self) -> _Line | None:
        if self.i >= len(self.lines):
            return None
        line = self.lines[self.i]
        if line.kind == "end":
            if self.strict:
                self.fail(line, "kunit_tool stops reading at this line")
            return None       # as kunit_tool: the kernel is going down, the output is over
        return line

    def pop(self) -> _Line:
        line = self.lines[self.i]
        self.i += 1
        return line

    def fail(self, line: _Line | None, why: str) -> None:
        if self.strict:
            where = f"line {line.no} ({line.text!r})" if line is not None else "end of document"
            raise KtapError(f"{where}: {why}")

    def diagnostics(self, indent: int) -> list[str]:
        out = []
        while (line := self.peek()) is not None and line.kind in ("diag", "blank", "unknown"):
            if line.kind != "diag":
                self.fail(line, "not a KTAP line (a diagnostic starts with '#')")
            elif line.indent != indent:
                self.fail(line, f"diagnostic indented by {line.indent}, its level by {indent}")
            out.append(self.pop().at(indent))
        return out

    def header(self, test: KtapTest, indent: int) -> None:
        """The version line, ``# Subtest:`` line and plan that open a parent test."""
        line = self.peek()
        if line is not None and line.kind == "version" and line.indent == indent:
            if line.text != "KTAP version 1":
                ok = (line.match[1], int(line.match[2])) in (("KTAP", 1), ("TAP", 13), ("TAP", 14))
                self.fail(line, "not KTAP version 1" if ok else "an unknown (K)TAP version")
            test.version = self.pop().text
        elif self.strict:
            self.fail(line, "a test with subtests must open with 'KTAP version 1'")
        line = self.peek()
        if line is not None and line.kind == "header" and line.indent == indent:
            test.name = self.pop().match[1]
        line = self.peek()
        if line is not None and line.kind == "plan" and line.indent == indent:
            test.plan = int(self.pop().match[1])
        else:
            self.fail(line, "a plan line (1..N) must follow the version line")

    def children(self, parent: KtapTest, indent: int, top: bool) -> None:
        """The subtests of ``parent``, whose level is at ``indent``."""
        while parent.plan is None or len(parent.subtests) < parent.plan:
            log = self.diagnostics(indent)
            line = self.peek()
            want = len(parent.subtests) + 1
            if line is None:
                if parent.plan is not None and len(parent.subtests) < parent.plan and not self.strict:
                    # The output ended inside the test: what came last is the crashed one's.
                    parent.subtests.append(KtapTest(number=want, log=log))
                else:
                    parent.log += log
                break
            if line.kind in ("version", "header") and line.indent > indent:
                child = self.subtest(indent, log)
            elif line.kind == "result" and line.indent == indent:
                name = (line.match[3] or "").strip()
                if not top and parent.name and name == parent.name:
                    if parent.plan is None:
                        parent.log += log    # no plan: the parent's own result line ends it (kunit_tool)
                        break
                    # kunit_tool ends a parent at a result line with its name, plan or not.
                    self.fail(line, f"a subtest named like its parent {name!r}")
                if not name:
                    self.fail(line, "a result line without a name (kunit_tool reads it as a diagnostic)")
                child = _leaf(self.pop())
                child.log = log
            else:
                if line.indent > indent or line.kind != "result" and line.indent == indent:
                    self.fail(line, "out of place here")
                parent.log += log    # a line of an enclosing level: this one is over
                break
            if child.number != want:
                self.fail(line, f"test number {child.number}, expected {want}")
                if parent.plan is not None and want < child.number <= parent.plan:
                    # A case that printed no result line (the kernel oopsed in it): KUnit
                    # numbers a suite's cases 1..N, so the gap says which ones.
                    gap = [KtapTest(number=n) for n in range(want, child.number)]
                    gap[0].log, child.log = child.log, []
                    parent.subtests += gap
            parent.subtests.append(child)
        if parent.plan is not None and len(parent.subtests) < parent.plan:
            self.fail(self.peek(), f"{parent.name or 'the document'} planned {parent.plan} tests, "
                                   f"found {len(parent.subtests)}")
            parent.subtests += [KtapTest(number=n) for n in range(len(parent.subtests) + 1, parent.plan + 1)]

    def subtest(self, parent_indent: int | None, log: list[str]) -> KtapTest:
        """A parent test: header, subtests, diagnostics, its result line at the parent's level
        (``parent_indent`` None: a KUnit suite printed on its own, its result line anywhere left
        of its lines)."""
        indent = self.peek().indent
        test = KtapTest(log=log)
        self.header(test, indent)
        self.children(test, indent, top=False)
        test.log += self.diagnostics(indent if parent_indent is None else parent_indent)
        line = self.peek()
        fits = line is not None and line.kind == "result" and (
            line.indent == parent_indent if parent_indent is not None else line.indent < indent)
        name = (line.match[3] or "").strip() if fits else ""
        if not fits or (test.name and name != test.name):
            self.fail(line, f"expected the result line of {test.name or 'the subtest'}")
            test.status = "crashed"
        else:
            result = _leaf(self.pop())
            test.name, test.number, test.status = name, result.number, result.status
            test.directive, test.reason = result.directive, result.reason
        bad = [t.name for t in test.subtests if t.status in ("fail", "crashed")]
        if bad and test.status in ("pass", "skipped"):
            self.fail(line, f"{test.name} is ok but its subtest {bad[0]} is not")
        if any(t.status == "crashed" for t in test.subtests):
            test.status = "crashed"
        return test


def _leaf(line: _Line) -> KtapTest:
    ok, number, name, comment = line.match[1], int(line.match[2]), (line.match[3] or "").strip(), line.match[4] or ""
    directive, _, reason = comment.partition(" ")
    if directive not in DIRECTIVES:
        directive, reason = "", comment
    status = "skipped" if directive == "SKIP" else "pass" if ok == "ok" else "fail"
    return KtapTest(name=name, status=status, number=number, directive=directive, reason=reason.strip())


def summary_status(tests: list[KtapTest]) -> str:
    """kunit_tool's roll-up: crashed over fail over pass; only skips (or nothing) is skipped."""
    got = {t.status for t in tests}
    for s in ("crashed", "fail", "pass"):
        if s in got:
            return s
    return "skipped"


def parse(text: str, strict: bool = True) -> KtapTest:
    """A whole KTAP document: its top level as a test named ``main`` whose status is the roll-up
    of its tests and whose log holds the diagnostics after them."""
    r = _Reader([_line(no, raw) for no, raw in enumerate(text.splitlines(), 1)], strict)
    if strict:
        tabbed = next((line for line in r.lines if line.tabs), None)
        if tabbed is not None:
            r.fail(tabbed, "indented with a tab (KTAP indents by two spaces a level)")
    first = r.peek()
    if first is None or first.kind != "version":
        raise KtapError(f"line 1 ({first.text if first else ''!r}): a KTAP document starts with 'KTAP version 1'")
    if strict and first.indent:
        r.fail(first, "the top level is not indented")
    main = KtapTest(name="main")
    r.header(main, first.indent)
    r.children(main, first.indent, top=True)
    main.log += r.diagnostics(first.indent)
    if r.i < len(r.lines):
        r.fail(r.lines[r.i], "after the last planned test")
    main.status = summary_status(main.subtests)
    return main


def kunit_suites(log: str) -> list[KtapTest]:
    """Every KUnit suite in a kernel log (console or ``dmesg`` lines, any prefixes): those a
    module prints on its own (``KTAP version 1`` / ``# Subtest: NAME`` / plan, indented, then
    ``ok N NAME`` at the left margin) and those under a top-level ``KTAP version 1`` / ``TAP
    version 14`` and plan (built-in suites at boot, newer kernels' modules)."""
    if "# Subtest:" not in log and "TAP version" not in log:
        return []   # the common case, cheaply: no KUnit here
    r = _Reader([_line(no, strip_prefix(raw)) for no, raw in enumerate(log.splitlines(), 1)], strict=False)
    suites: list[KtapTest] = []
    while (line := r.peek()) is not None:
        if line.kind == "header" or line.kind == "version" and _next_kind(r) == "header":
            suites.append(r.subtest(None, []))
        elif line.kind == "version" and _next_kind(r) == "plan":
            main = KtapTest(name="main")
            r.header(main, line.indent)
            r.children(main, line.indent, top=True)
            suites += main.subtests
        else:
            r.pop()
    return suites


def _next_kind(r: _Reader) -> str:
    return r.lines[r.i + 1].kind if r.i + 1 < len(r.lines) else ""
