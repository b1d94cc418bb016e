"""The one way kharness shortens a long text it keeps: logs in a result, a kernel report in a finding.

A runaway log (a flood of printk, a lockdep dump of every held lock) must not bloat result files
and terminal output, and what a reader needs is at both ends: the start says what happened, the
end how it ended. So a capped text keeps a head and a tail, cut at line boundaries, with
``[... truncated N bytes ...]`` between them, N being exactly the bytes left out.
"""

from __future__ import annotations

LOG_CAP = 64 << 10      # bytes of any one log excerpt kept in a result
REPORT_CAP = 16 << 10   # bytes of one finding's report


def _marker(dropped: int) -> str:
    return f"\n[... truncated {dropped} bytes ...]\n"


def cap(text: str, limit: int = LOG_CAP, head: float = 0.5) -> str:
    """Cap ``text`` at ``limit`` UTF-8 bytes, the marker included.

    ``head`` is the share of the room given to the head (a kernel report wants more of its head:
    headline, registers, top of the trace; a log an even split). Each part is cut back to a line
    boundary unless that would throw away more than half of it (a log of one huge line), and never
    inside a UTF-8 character. A ``limit`` smaller than the marker leaves the marker alone.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    # The dropped count is at most len(data), so a marker sized for it is at least as long.
    keep = max(limit - len(_marker(len(data)).encode()), 0)
    head_n = int(keep * head)
    first = data[:head_n]
    cut = first.rfind(b"\n")
    if cut > len(first) // 2:
        first = first[:cut]
    last = data[len(data) - (keep - head_n):] if keep > head_n else b""
    cut = last.find(b"\n")
    if 0 <= cut < len(last) // 2:
        last = last[cut + 1:]
    head_s = first.decode("utf-8", "ignore")
    tail_s = last.decode("utf-8", "ignore")
    dropped = len(data) - len(head_s.encode("utf-8", "replace")) - len(tail_s.encode("utf-8", "replace"))
    return f"{head_s}{_marker(dropped)}{tail_s}"
