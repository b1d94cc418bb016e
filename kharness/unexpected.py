"""Unexpected exceptions: a bug in kharness or a host failure nobody foresaw (a truncated HTTP
response, an OSError from the filesystem) is an infrastructure error - exit 2, one line, the
traceback kept for the report - never a bare traceback with exit 1, which means "the module failed".
"""

from __future__ import annotations

import traceback as tb

from kharness.errors import InfraError

HINT = "run with --verbose for the traceback; please report it"


def describe(exc: BaseException) -> str:
    """One line naming the exception: ``FileExistsError: [Errno 17] File exists: '/x'``, or
    ``IncompleteRead(10 bytes read, 90 more expected)`` when its text already names its type."""
    name = type(exc).__name__
    text = str(exc)
    if not text:
        line = name
    elif text.startswith(name):
        line = text
    else:
        line = f"{name}: {text}"
    line = " ".join(line.split())   # a multi-line message stays one line
    return line if len(line) <= 300 else line[:297] + "..."


class InternalError(InfraError):
    """An unexpected exception, carried as an infrastructure error together with its traceback."""

    def __init__(self, exc: BaseException):
        super().__init__(f"internal error: {describe(exc)}", hint=HINT)
        self.original = exc
        self.traceback = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def as_result(result, exc: BaseException):
    """``result`` (a :class:`~kharness.result.model.Result`) settled as the internal error ``exc``:
    status ``error``, kind ``infrastructure``, the traceback kept. For an exception raised where
    the runner could not settle it itself."""
    internal = InternalError(exc)
    result.status = "error"
    result.error = {"kind": internal.kind, "message": str(internal)}
    result.summary = str(internal)
    result.traceback = internal.traceback
    for p in result.phases:
        if p.status == "running":
            p.status, p.message = "error", str(internal)
    return result
