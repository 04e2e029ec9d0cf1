"""Pseudonymous ids and message stamping (source, patient, per-source sequence, trace, drill)."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any


def pseudonym(name: str, *, key: str, prefix: str = "pt") -> str:
    """A stable pseudonymous id for a person or record name: HMAC-SHA256, 12 hex digits.

    The name itself never goes on the bus or into logs; only whoever holds `key` can link the two.
    """
    digest = hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:12]}"


class _Sequence:
    """One source's sequence in this process. Starts at the microsecond clock, so a restarted device never
    reuses a number its previous run sent (a reused number under a new id reads as a replay)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = time.time_ns() // 1000

    def __call__(self) -> int:
        with self._lock:
            self._value += 1
            return self._value


_SEQUENCES: dict[str, _Sequence] = {}
_SEQUENCES_LOCK = threading.Lock()


def _sequence_for(source: str) -> _Sequence:
    with _SEQUENCES_LOCK:
        return _SEQUENCES.setdefault(source, _Sequence())


class Stamper:
    """Builds the envelope fields a component puts on every message it sends. Stampers of one source in one
    process (an edge's hub and its aggregator) share its sequence."""

    def __init__(self, source: str, next_seq: Callable[[], int] | None = None) -> None:
        self.source = source
        self._next_seq = next_seq or _sequence_for(source)

    def __call__(self, *, patient_id: str | None, trace_id: str | None = None, drill: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {"source": self.source, "patient_id": patient_id, "seq": self._next_seq(),
                                  "drill": drill}
        if trace_id is not None:
            fields["trace_id"] = trace_id
        return fields
