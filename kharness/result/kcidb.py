"""Runs as KernelCI's KCIDB I/O data (schema v5.3, as the ``kcidb-io`` package defines it): one
checkout (the module's sources), a build per run (the module built for one target and kernel),
and tests under it: a phase is ``kharness.<phase>``, a check ``kharness.check.<name>``, a KUnit
case ``kharness.kunit.<suite>.<case>``.

Works on result JSON documents, like :mod:`kharness.result.ktap`. What the checkout is (a git
commit, a content hash) is found by the caller (it runs git) and passed in as a dict.

KCIDB allows no null anywhere, so a field kharness does not know is left out; its ids are
``<origin>:<anything>``, unique per object type: a build's holds the run's start time, so two runs
of the same commit are two builds.
"""

from __future__ import annotations

import re
import time

from kharness import __version__
from kharness.result.cap import cap
from kharness.result.ktap import stopped_at

VERSION = {"major": 5, "minor": 3}
ORIGIN = "kharness"
EXCERPT = 16000          # bytes of a log_excerpt (KCIDB's limit is 16384 characters)
_SEGMENT = re.compile(r"[^A-Za-z0-9_-]+")
_STATUS = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skipped": "SKIP", "crashed": "FAIL"}


def segment(name: str) -> str:
    """One step of a KCIDB test path: letters, digits, ``_`` and ``-`` only."""
    return _SEGMENT.sub("_", str(name)).strip("_") or "unnamed"


def _clean(d: dict) -> dict:
    """Without None and empty strings (KCIDB has no null); NULs out of strings (its patterns)."""
    out = {}
    for k, v in d.items():
        if v is None or v == "" or v == {}:
            continue
        if isinstance(v, str):
            v = v.replace("\0", "\\0")
        elif isinstance(v, dict):
            v = _clean(v)
        out[k] = v
    return out


def _excerpt(text: str) -> str:
    return cap(text, EXCERPT, head=0.25) if text else ""   # the end of a log says most


def checkout_object(source: dict, started: str) -> dict:
    """``source``: ``{key, module_dir, content_sha256, git: {url, remote, commit, branch, name,
    dirty}}`` (git only in a git work tree)."""
    git = source.get("git") or {}
    clean = git and not git.get("dirty")
    return _clean({
        "id": f"{ORIGIN}:{source['key']}", "origin": ORIGIN, "valid": True, "start_time": started,
        "comment": f"{source.get('module_dir', '')} (kharness {__version__})",
        "git_repository_url": git.get("url"), "git_commit_hash": git.get("commit"),
        "git_repository_branch": git.get("branch"), "git_commit_name": git.get("name"),
        "misc": {"kharness_version": __version__, "module_dir": source.get("module_dir"),
                 "content_sha256": source.get("content_sha256"), "git_remote": git.get("remote"),
                 "dirty": git.get("dirty") if git else None},
    }) | ({"patchset_hash": ""} if clean else {})   # "" says: nothing applied on the commit


def _stamp(started: str) -> str:
    return re.sub(r"[^0-9TZ]", "", started)


def _phase_status(doc: dict, phase: dict) -> str:
    if phase["name"] == stopped_at(doc):
        return "ERROR" if doc.get("status") == "error" else "FAIL"
    if phase["status"] == "skipped" and doc.get("status") == "error":
        return "MISS"    # not run because the harness failed, not because it did not apply
    return _STATUS.get(phase["status"], "ERROR")


def run_objects(doc: dict, checkout_id: str, architecture: str) -> tuple[dict, list[dict]]:
    """One run's build and its tests."""
    kernel = doc.get("kernel") or {}
    release = kernel.get("release") or doc.get("kernel_wanted", "")
    build_rec = doc.get("build") or {}
    phases = {p["name"]: p for p in doc.get("phases", [])}
    started = doc.get("started") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    build_id = f"{checkout_id}:{segment(doc.get('target', ''))}:{release}:{_stamp(started)}"
    bp = phases.get("build", {"name": "build", "status": "skipped"})
    build = _clean({
        "id": build_id, "origin": ORIGIN, "checkout_id": checkout_id, "start_time": started,
        "architecture": re.sub(r"[^a-z0-9_]", "_", architecture.lower()),
        "config_name": release + ("+debug" if kernel.get("debug") else ""),
        "compiler": doc.get("compiler") or build_rec.get("compiler"), "command": build_rec.get("command"),
        "duration": bp.get("duration"), "log_excerpt": _excerpt(bp.get("log", "")),
        "status": _phase_status(doc, bp),
        "comment": f"{doc.get('module_dir', '')} for {doc.get('target', '')} / {release}",
        "misc": {"target": doc.get("target"), "kernel_wanted": doc.get("kernel_wanted"), "kernel_release": release,
                 "kernel_version": kernel.get("version"), "kernel_suite": kernel.get("suite"),
                 "built_by": build_rec.get("built_by"), "cached": build_rec.get("cached"),
                 "modules": [m.get("name") for m in doc.get("modules", [])] or None},
    })
    env = _clean({"comment": f"QEMU {doc.get('target', '')}" + (f" ({doc['accelerator']})" if doc.get("accelerator") else ""),
                  "misc": {"target": doc.get("target"), "accelerator": doc.get("accelerator"),
                           "boot_mode": doc.get("boot_mode"), "qemu": (doc.get("reproducer") or {}).get("qemu")}})
    misc = {"kernel_release": release, "run_status": doc.get("status"), "run_summary": doc.get("summary")}
    tests, seen = [], set()

    def test(path: str, status: str, duration=None, comment="", log="", extra=None) -> None:
        while path in seen:     # two checks whose names differ only in what a path cannot hold
            path += "_"
        seen.add(path)
        tests.append(_clean({"id": f"{build_id}:{path}", "origin": ORIGIN, "build_id": build_id, "path": path,
                             "status": status, "start_time": started, "duration": duration,
                             "comment": comment, "log_excerpt": _excerpt(log), "environment": env,
                             "misc": dict(misc, **(extra or {}))}))

    for p in doc.get("phases", []):
        found = [f for f in doc.get("findings", []) if f.get("phase") == p["name"]]
        log = p.get("log", "") + "".join(f"\n{f['kind']}: {f['summary']}\n{f.get('report', '')}" for f in found)
        test(f"kharness.{p['name']}", _phase_status(doc, p), p.get("duration"), p.get("message", ""), log,
             {"findings": [f"{f['kind']}: {f['summary']}" for f in found] or None})
    for c in doc.get("checks", []):
        log = "\n".join(x for x in (c.get("message", ""), c.get("stdout", ""), c.get("stderr", "")) if x)
        test(f"kharness.check.{segment(c['name'])}", _STATUS.get(c["status"], "ERROR"), c.get("duration"),
             c["name"], log, {"command": c.get("command"), "rc": c.get("rc"), "expect_rc": c.get("expect_rc")})
    for s in doc.get("kunit") or []:
        for c in s.get("cases", []):
            test(f"kharness.kunit.{segment(s['name'])}.{segment(c['name'])}", _STATUS.get(c["status"], "ERROR"),
                 comment=f"{s['name']}.{c['name']}", log=c.get("log", ""),
                 extra={"kunit_status": c["status"], "phase": s.get("phase"),
                        "params": [f"{x['name']}: {x['status']}" for x in c.get("params", [])] or None})
    return build, tests


def document(source: dict, runs: list[tuple[dict, str]]) -> dict:
    """The KCIDB data: ``runs`` are ``(result document, the target's kernel architecture)``."""
    started = min((d.get("started") for d, _ in runs if d.get("started")), default=None) or \
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    checkout = checkout_object(source, started)
    builds, tests = [], []
    for doc, arch in runs:
        b, t = run_objects(doc, checkout["id"], arch)
        builds.append(b)
        tests += t
    return {"version": dict(VERSION), "checkouts": [checkout], "builds": builds, "tests": tests}
