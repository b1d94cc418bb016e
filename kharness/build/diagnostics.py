"""Compiler and modpost output into structured records."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

_GCC_RE = re.compile(
    r"^(?P<file>[^:\s][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s+"
    r"(?P<sev>fatal error|error|warning|note):\s+(?P<msg>.*)$")
_MODPOST_RE = re.compile(r"^(?P<sev>ERROR|WARNING): modpost: (?P<msg>.*)$")
# Driver-level messages with no location, e.g. "gcc-12: error: unrecognized command-line option"
# (a bad ccflags entry) or "cc1: warning: ...".
_DRIVER_RE = re.compile(r"^(?P<tool>\S*(?:gcc|cc1|cc|clang)(?:-\d+)?): (?P<sev>fatal error|error|warning): (?P<msg>.*)$")


@dataclass(frozen=True)
class Diagnostic:
    file: str | None
    line: int | None
    column: int | None
    severity: str          # error | warning | note
    message: str
    tool: str = "gcc"

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        loc = ":".join(str(x) for x in (self.file, self.line, self.column) if x is not None)
        return f"{loc + ': ' if loc else ''}{self.severity}: {self.message}"


def parse_diagnostics(log: str, path_map: dict[str, str] | None = None) -> list[Diagnostic]:
    """Records for every gcc/modpost diagnostic in ``log``. ``path_map`` maps build-tree path
    prefixes back to the user's own paths."""
    out: list[Diagnostic] = []
    seen = set()
    for line in log.splitlines():
        m = _GCC_RE.match(line)
        if m:
            f = m.group("file")
            for a, b in (path_map or {}).items():
                if f.startswith(a):
                    f = b + f[len(a):]
                    break
            sev = "error" if m.group("sev") == "fatal error" else m.group("sev")
            d = Diagnostic(f, int(m.group("line")), int(m.group("col")) if m.group("col") else None,
                           sev, m.group("msg").strip())
        else:
            m = _MODPOST_RE.match(line.strip())
            if m:
                d = Diagnostic(None, None, None, m.group("sev").lower(), m.group("msg").strip(), "modpost")
            else:
                m = _DRIVER_RE.match(line.strip())
                if not m:
                    continue
                sev = "error" if m.group("sev") == "fatal error" else m.group("sev")
                d = Diagnostic(None, None, None, sev, m.group("msg").strip(), "gcc")
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out
