"""Pseudonymous ids and message stamping (source, patient, per-source sequence, trace, drill)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
from collections.abc import Callable
from typing import Any


def pseudonym(name: str, *, key: str, prefix: str = "pt") -> str:
    """A stable pseudonymous id for a person or record name: HMAC-SHA256, 12 hex digits.

    The name itself never goes on the bus or into logs; only whoever holds `key` can link the two.
    """
    digest = hmac.new(key.encode(), name.encode(), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:12]}"


class Stamper:
    """Builds the envelope fields a component puts on every message it sends."""

    def __init__(self, source: str, next_seq: Callable[[], int] | None = None) -> None:
        self.source = source
        if next_seq is None:
            counter = itertools.count(1)
            lock = threading.Lock()

            def _next() -> int:
                with lock:
                    return next(counter)

            next_seq = _next
        self._next_seq = next_seq

    def __call__(self, *, patient_id: str | None, trace_id: str | None = None, drill: bool = False) -> dict[str, Any]:
        fields: dict[str, Any] = {"source": self.source, "patient_id": patient_id, "seq": self._next_seq(),
                                  "drill": drill}
        if trace_id is not None:
            fields["trace_id"] = trace_id
        return fields
