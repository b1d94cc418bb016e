"""A call run in a thread under a limit: a hang fails the test instead of wedging the suite
(pytest-timeout is the outer bound; this one names the call that hung)."""

from __future__ import annotations

import threading


def bounded(fn, limit: float = 60.0) -> dict:
    """``{"value": ...}`` or ``{"error": exception}`` of ``fn()``; fails if it runs past ``limit``."""
    box: dict = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"the call did not return within {limit:g}s"
    return box
