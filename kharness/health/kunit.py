"""KUnit results in a kernel log: a module that carries KUnit suites runs them when it is loaded
(kunit_test_suite()) and prints KTAP to the kernel log. :func:`kunit_results` turns that into the
result's ``kunit`` entries; :func:`failures` says which of them fail the run.

Debian's kernels are built without CONFIG_KUNIT, so today this reads logs of kernels that have
it (a later kharness may build them); tests/data/console has such logs.
"""

from __future__ import annotations

from kharness.health.ktap import KtapTest, kunit_suites, summary_status
from kharness.result.cap import cap

LOG_LIMIT = 4 << 10     # bytes of one case's diagnostics kept (the phase's dmesg has them all)
BAD = ("fail", "crashed")


def _log(lines: list[str]) -> str:
    return cap("\n".join(lines), LOG_LIMIT)


def _case(t: KtapTest) -> dict:
    d = {"name": t.name or f"case {t.number}", "status": t.status, "log": _log(t.log)}
    if t.status == "skipped" and t.reason:
        d["reason"] = t.reason
    if t.subtests:    # a parameterised case: one result per parameter
        d["params"] = [dict({"name": p.name or f"param {p.number}", "status": p.status, "log": _log(p.log)},
                            **({"reason": p.reason} if p.status == "skipped" and p.reason else {}))
                       for p in t.subtests]
    return d


def kunit_results(log: str, phase: str) -> list[dict]:
    """``[{name, phase, status, cases: [{name, status, log, reason?, params?}], log}]`` for every
    KUnit suite ``log`` printed. A suite's status is the roll-up of its cases (``crashed`` when it
    or a case printed no result line: the kernel oopsed, or the log ended)."""
    out = []
    for s in kunit_suites(log):
        cases = [_case(c) for c in s.subtests]
        status = "crashed" if s.status == "crashed" else summary_status(s.subtests) if s.subtests else s.status
        if s.status == "fail" and status == "pass":
            status = "fail"     # the suite itself failed (its init, say) though its cases passed
        out.append({"name": s.name or f"suite {s.number}", "phase": phase, "status": status, "cases": cases,
                    "log": _log(s.log)})
    return out


def failures(suites: list[dict]) -> list[str]:
    """``suite.case`` (or ``suite``) of every failed or crashed case and suite."""
    bad = []
    for s in suites:
        named = [f"{s['name']}.{c['name']}" for c in s["cases"] if c["status"] in BAD
                 or any(p["status"] in BAD for p in c.get("params", []))]
        bad += named or ([s["name"]] if s["status"] in BAD else [])
    return bad
