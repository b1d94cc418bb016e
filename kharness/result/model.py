"""The result of one run, schema ``kharness/result/v1``.

``status`` is ``pass``, ``fail`` (the module failed: build, load, a check, unload, or the kernel
complained) or ``error`` (usage or infrastructure: the module was not judged). The CLI's exit
code is derived from it and nothing else: 0, 1, 2.

Every field carries its documentation; docs/result-schema.md and result.schema.json are written
from this module by ``python -m kharness.result.schema --write`` (a unit test proves they are).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum

from kharness.result.cap import LOG_CAP, cap
from kharness.result.finding import Finding
from kharness.result.records import BuildRecord, ImageRecord, KernelRecord, Record, TaintRecord, doc
from kharness.result.status import EXIT_CODES, PHASES, CheckStatus, PhaseStatus, RunStatus

__all__ = ["SCHEMA", "PHASES", "LOG_CAP", "EXIT_CODES", "cap", "Phase", "CheckResult", "Result", "Finding",
           "KernelRecord", "BuildRecord", "ImageRecord", "TaintRecord"]

SCHEMA = "kharness/result/v1"

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DEPENDENCY = {"type": "object", "required": ["name", "file", "wanted_by", "soft", "status"],
               "properties": {"name": {"type": "string"}, "file": {"type": "string"},
                              "wanted_by": {"type": "string"}, "soft": {"type": "boolean"},
                              "params": {"type": "array", "items": {"type": "string"}},
                              "status": {"enum": ["loaded", "already loaded", "failed", "not loaded"]}}}
_EXPECTED_FAILURE = {"type": "object", "required": ["expected", "got", "as_expected"],
                     "properties": {"expected": {"type": "string"}, "got": {"type": ["string", "null"]},
                                    "as_expected": {"type": "boolean"}, "output": {"type": "string"}}}
_UNKNOWN_SYMBOLS = {"type": "object", "properties": {
    "summary": {"type": "string"},
    "symbols": {"type": "array", "items": {
        "type": "object", "required": ["module", "symbol", "kind", "message"],
        "properties": {"module": {"type": "string"}, "symbol": {"type": "string"},
                       "kind": {"enum": ["exporter-not-loaded", "gpl-only", "not-exported", "version-mismatch",
                                         "namespace-not-imported", "refused"]},
                       "exporter": {"type": ["string", "null"]}, "message": {"type": "string"},
                       "err": {"type": ["integer", "null"]}}}}}}


@dataclass
class Phase:
    """One step of the pipeline."""

    name: str = doc("which phase", schema={"enum": list(PHASES)})
    status: PhaseStatus = doc("`skipped`: not reached", default=PhaseStatus.SKIPPED)
    duration: float = doc("seconds", default=0.0)
    message: str = doc("what happened, one line", default="")
    log: str = doc("an excerpt of what the phase printed, capped at 64 KiB (head and tail kept)", default="")
    details: dict = doc("reserved for phase-specific data", default_factory=dict)


@dataclass
class CheckResult:
    """One check from kharness.toml (or a Session), as it ran."""

    name: str = doc("the check's name")
    command: str = doc("the command run in the guest")
    status: CheckStatus = doc("`skipped` for a check whose `targets` exclude this target")
    rc: int | None = doc("its exit status (null when it did not run)")
    expect_rc: int = doc("the exit status it had to have")
    stdout: str = doc("capped at 64 KiB", default="")
    stderr: str = doc("capped at 64 KiB", default="")
    duration: float = doc("seconds", default=0.0)
    message: str = doc("which expectation failed and what came back", default="")
    background: dict | None = doc(
        "a `program` check with `background = true`: `{pid, ended}`, `ended` being `running` (not stopped yet), "
        "`exited` (by itself: `rc` is its exit status, judged by `expect_rc`), `stopped` (still running after the "
        "last check: SIGTERM), `killed` (it ignored SIGTERM: SIGKILL), `stuck` (still there after SIGKILL) or `not "
        "started`; its `stdout`, `stderr` and status are what it did until then. Only for such a check",
        optional=True, schema={"type": "object", "required": ["pid", "ended"], "properties": {
            "pid": {"type": ["integer", "null"]},
            "ended": {"enum": ["running", "exited", "stopped", "killed", "stuck", "not started"]}}})


_PROGRAM = {"type": "object", "required": ["name", "sources", "target", "cached", "size", "binary", "guest_path"],
            "properties": {"name": {"type": "string"}, "sources": {"type": "array", "items": {"type": "string"}},
                           "target": {"type": "string"}, "cached": {"type": "boolean"}, "size": {"type": "integer"},
                           "binary": {"type": "string"}, "guest_path": {"type": "string"},
                           "compiler": {"type": "string"}}}
_KUNIT_STATUS = {"enum": ["pass", "fail", "skipped", "crashed"]}
_KUNIT_PARAM = {"type": "object", "required": ["name", "status", "log"],
                "properties": {"name": {"type": "string"}, "status": _KUNIT_STATUS, "log": {"type": "string"},
                               "reason": {"type": "string"}}}
_KUNIT_CASE = {"type": "object", "required": ["name", "status", "log"],
               "properties": dict(_KUNIT_PARAM["properties"], params={"type": "array", "items": _KUNIT_PARAM})}
_KUNIT_SUITE = {"type": "object", "required": ["name", "phase", "status", "cases", "log"],
                "properties": {"name": {"type": "string"}, "phase": {"enum": list(PHASES)}, "status": _KUNIT_STATUS,
                               "cases": {"type": "array", "items": _KUNIT_CASE}, "log": {"type": "string"}}}


@dataclass
class Result:
    module_dir: str = doc("the directory as given")
    target: str = doc("target profile name (`images/<target>.toml`)")
    kernel_wanted: str = doc("what `--kernel` asked for (`\"default\"` if nothing)")
    status: RunStatus = doc("`pass`: built, loaded, checked, unloaded, no kernel complaint. `fail`: the module "
                            "failed (exit 1). `error`: usage or infrastructure error, the module was not judged "
                            "(exit 2). `skipped`: the module's own files exclude this target or kernel (a "
                            "dkms.conf's `BUILD_EXCLUSIVE_*`): nothing was built or booted (exit 0)",
                            default=RunStatus.ERROR)
    summary: str = doc("one line: what happened (for `fail`: `<phase>: <why>`; for `skipped`: `skipped: <why>`)",
                       default="")
    kernel: KernelRecord | None = doc("the kernel (see below); `{}` before one was chosen", default=None)
    guest: dict = doc("the system around the module: `{kind}` is `busybox` (kharness's initramfs), `debian` (a "
                      "Debian root filesystem driven over SSH: with `suite`, `packages`, `rootfs`, `key`, "
                      "`ssh_port`) or `remote` (a board over SSH: with `address`, `machine`)",
                      default_factory=lambda: {"kind": "busybox"}, schema={"type": "object"}, optional=True)
    accelerator: str | None = doc("what QEMU ran with: `tcg` or `kvm`", default=None)
    accelerator_note: str = doc("why (e.g. the KVM probe's failure)", default="")
    boot_mode: str = doc("`snapshot` (the ready guest was restored from its saved state) or `cold` (booted)",
                         default="", schema={"enum": ["", "snapshot", "cold"]})
    boot_mode_note: str = doc("why: the snapshot restored, `--cold`, a target without snapshots, why none could be "
                              "made, or why a restore was abandoned (`restoring KEY abandoned (at STEP: what "
                              "happened; limit LIMIT = how it was reckoned); booted instead`)", default="")
    compiler: str | None = doc("the compiler that built the module (`gcc --version` first line, and where it ran)",
                               default=None)
    params: dict = doc("`{module: {key: value}}` as passed to insmod", default_factory=dict,
                       schema={"type": "object", "additionalProperties": _STR_MAP})
    gpio: dict = doc("`{controller, base, lines}` of the kharness virtual GPIO controller when `[gpio]` loaded "
                     "it, else `{}`", default_factory=dict,
                     schema={"type": "object", "properties": {"controller": {"type": "string"},
                                                              "base": {"type": "integer"},
                                                              "lines": {"type": "integer"}}})
    modules: list = doc("built modules: `{name, file, path (the cached .ko), size, vermagic, modinfo: {license, "
                        "author, description, depends, parm, ...}}`", default_factory=list,
                        schema={"type": "array", "items": {
                            "type": "object", "required": ["name", "file", "path", "size", "vermagic", "modinfo"],
                            "properties": {"name": {"type": "string"}, "file": {"type": "string"},
                                           "path": {"type": "string"}, "size": {"type": "integer"},
                                           "vermagic": {"type": "string"}, "modinfo": {"type": "object"}}}})
    dependencies: dict | None = doc(
        "the kernel's own modules loaded before the modules under test, per module that needed them (`depends:` "
        "in its modinfo), and under `\"[module] requires\"` for what kharness.toml asked for: `{module: [{name, "
        "file, wanted_by, soft, params, status}]}`, each list in load order (they are unloaded in reverse after the "
        "modules under test). `status`: `loaded`; `already loaded` (the guest had it: not unloaded either); "
        "`failed` (a soft dependency that would not load, which is not the module's failure); `not loaded` (the run "
        "ended before). Only when a module needed any", optional=True,
        schema={"type": "object", "additionalProperties": {"type": "array", "items": _DEPENDENCY}})
    expected_load_failures: dict | None = doc(
        "`[load] expect_errno`: `{module: {expected, got, as_expected, output}}`, the errno its insmod had to fail "
        "with, the one it failed with (null if it loaded, or no errno could be read), and insmod's message. Only "
        "with `[load] expect_errno`", optional=True,
        schema={"type": "object", "additionalProperties": _EXPECTED_FAILURE})
    unknown_symbols: dict | None = doc(
        "when an insmod failed on symbols the kernel could not resolve: `{summary, symbols: [{module, symbol, kind, "
        "exporter, message, err}]}`, each symbol explained from the kernel's Module.symvers and module tree (`kind`: "
        "`exporter-not-loaded`, `gpl-only`, `not-exported`, `version-mismatch`, `namespace-not-imported`, "
        "`refused`). Only then", optional=True, schema=_UNKNOWN_SYMBOLS)
    programs: list | None = doc(
        "companion programs (`program` checks) built for the target: `{name, sources, target, cached (reused "
        "without running the compiler), size (bytes of the static, stripped binary), binary (the cached file), "
        "guest_path (`/kh/bin/<name>`), compiler}`. Only when the run has such a check", optional=True,
        schema={"type": "array", "items": _PROGRAM})
    kunit: list | None = doc(
        "KUnit suites the modules under test ran (a module with `kunit_test_suite()` runs them when it is "
        "loaded), read from the KTAP they printed to the kernel log: `{name, phase (whose kernel log had them), "
        "status, cases: [{name, status, log (its diagnostic lines), reason (of a skip), params (a parameterised "
        "case's results: [{name, status, log, reason}])}], log}`. `status`: `pass`, `fail`, `skipped` or "
        "`crashed` (no result line: the kernel oopsed in it, or the log ended). A failed or crashed case fails "
        "that phase. Only when the log held any", optional=True,
        schema={"type": "array", "items": _KUNIT_SUITE})
    phases: list[Phase] = doc("always six, in order `build`, `image`, `boot`, `load`, `check`, `unload`",
                              default_factory=lambda: [Phase(n) for n in PHASES])
    checks: list[CheckResult] = doc("one per check run (or skipped)", default_factory=list)
    findings: list[Finding] = doc("kernel reports and guest trouble, in order (see below)", default_factory=list)
    taint: TaintRecord | None = doc("after the last phase (see below); `{}` before the first look", default=None)
    dmesg: dict = doc("kernel log per phase (`boot`, `load`, `check`, `unload`), raw `<level>[time] text` lines, "
                      "each capped at 64 KiB; with kmemleak, `kmemleak`: the records of the scan after rmmod, with "
                      "the module's raw addresses symbolized (`fn+0x3d/0xb2 [mod]`)", default_factory=dict,
                      schema=_STR_MAP)
    build: BuildRecord | None = doc("how the module was built (see below); `{}` before it was", default=None)
    image: ImageRecord | None = doc("the guest image (see below); `{}` before it was made", default=None)
    error: dict | None = doc("for `status = \"error\"`: `{\"kind\": \"usage\" | \"infrastructure\", \"message\": "
                             "\"...\"}`. An unexpected exception (a kharness bug, or a host failure nobody foresaw) "
                             "is an `infrastructure` error whose message starts with `internal error: ` and names "
                             "the exception; the command exits 2", default=None,
                             schema={"type": ["object", "null"], "required": ["kind", "message"],
                                     "properties": {"kind": {"enum": ["usage", "infrastructure"]},
                                                    "message": {"type": "string"}}})
    traceback: str = doc("for such an internal error, its Python traceback (also printed with `--verbose`), capped "
                         "at 64 KiB; else `\"\"`", default="")
    reproducer: dict = doc("`kharness`: the command line that reproduces this run with the exact release; `qemu`: "
                           "the QEMU command line used", default_factory=dict, schema=_STR_MAP)
    artifacts: dict = doc("`console_log_tail` (last 32 KiB of the kernel console), `run_dir` (with `--keep`: "
                          "console.log, channel.log, qemu.stderr, initrd)", default_factory=dict, schema=_STR_MAP)
    started: float = doc("UTC start time, ISO 8601", default_factory=time.time,
                         schema={"type": "string", "format": "date-time"})
    duration: float = doc("the whole run, seconds", default=0.0)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict:
        """The JSON document: plain dicts, lists and strings (statuses and kinds as their values),
        times rounded, logs capped; the result itself is left as it is."""
        d = {"schema": SCHEMA}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue   # a part only some runs have
            if f.name in ("kernel", "taint", "build", "image"):
                d[f.name] = value.to_dict() if isinstance(value, Record) else dict(value or {})
            elif f.name == "findings":
                d[f.name] = [(x if isinstance(x, Finding) else Finding(**x)).to_dict() for x in value]
            else:
                d[f.name] = _plain(value)
        d["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        d["duration"] = round(self.duration, 3)
        for p in d["phases"]:
            p["duration"] = round(p["duration"], 3)
            p["log"] = cap(p["log"])
        for c in d["checks"]:
            if c.get("background") is None:
                c.pop("background", None)   # only a background program's
            c["duration"] = round(c["duration"], 3)
            c["stdout"] = cap(c["stdout"])
            c["stderr"] = cap(c["stderr"])
        d["dmesg"] = {k: cap(v) for k, v in d["dmesg"].items()}
        d["traceback"] = cap(d["traceback"])
        return d


def _plain(value):
    """JSON-ready copy: dataclasses to dicts, enum members to their values."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
