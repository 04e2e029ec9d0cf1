"""Polling for what another thread or process will do, with a deadline (never a bare sleep-and-hope)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, *, every_s: float = 0.05) -> bool:
    """True as soon as `predicate()` holds; its last value once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()
