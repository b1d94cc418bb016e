"""The result of one run, schema ``kharness/result/v1`` (documented in docs/result-schema.md).

``status`` is ``pass``, ``fail`` (the module failed: build, load, a check, unload, or the kernel
complained) or ``error`` (usage or infrastructure: the module was not judged). The CLI's exit
code is derived from it and nothing else: 0, 1, 2.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

SCHEMA = "kharness/result/v1"
PHASES = ("build", "image", "boot", "load", "check", "unload")
LOG_CAP = 64 << 10      # bytes of any one log excerpt kept in the result
EXIT_CODES = {"pass": 0, "fail": 1, "error": 2}


def cap(text: str, limit: int = LOG_CAP) -> str:
    """Keep the head and the tail of a long log: the start says what happened, the end how it ended."""
    b = text.encode("utf-8", "replace")
    if len(b) <= limit:
        return text
    half = limit // 2
    return (b[:half].decode("utf-8", "ignore") + f"\n[... {len(b) - limit} bytes truncated ...]\n"
            + b[-half:].decode("utf-8", "ignore"))


@dataclass
class Phase:
    name: str
    status: str = "skipped"     # pass | fail | error | skipped
    duration: float = 0.0
    message: str = ""
    log: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class CheckResult:
    name: str
    command: str
    status: str                 # pass | fail | skipped (a check for other targets)
    rc: int | None
    expect_rc: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    message: str = ""


@dataclass
class Result:
    module_dir: str
    target: str
    kernel_wanted: str
    status: str = "error"
    summary: str = ""
    kernel: dict = field(default_factory=dict)
    accelerator: str | None = None
    accelerator_note: str = ""
    boot_mode: str = ""          # "snapshot" (restored a saved ready guest) or "cold" (booted)
    boot_mode_note: str = ""
    compiler: str | None = None
    params: dict = field(default_factory=dict)
    gpio: dict = field(default_factory=dict)   # the kharness virtual GPIO controller, when loaded
    modules: list = field(default_factory=list)
    phases: list[Phase] = field(default_factory=lambda: [Phase(n) for n in PHASES])
    checks: list[CheckResult] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    taint: dict = field(default_factory=dict)
    dmesg: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)
    image: dict = field(default_factory=dict)
    error: dict | None = None
    traceback: str = ""          # an internal error (an unexpected exception): its Python traceback
    reproducer: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    duration: float = 0.0

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict:
        d = asdict(self)
        d = {"schema": SCHEMA, **d}
        d["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))
        d["duration"] = round(self.duration, 3)
        for p in d["phases"]:
            p["duration"] = round(p["duration"], 3)
            p["log"] = cap(p["log"])
        for c in d["checks"]:
            c["duration"] = round(c["duration"], 3)
            c["stdout"] = cap(c["stdout"])
            c["stderr"] = cap(c["stderr"])
        d["dmesg"] = {k: cap(v) for k, v in d["dmesg"].items()}
        d["traceback"] = cap(d["traceback"])
        return d
