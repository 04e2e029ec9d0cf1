"""Watches the whole site's traffic and keeps the demo's books: what happened, and what got lost.

An alert is *lost* when it never got a final triage decision at the edge, or was escalated and never
got a rendered report. Drills are counted apart and never in the clinical figures.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from shared.messages import (
    AlertMessage,
    AnalysisMessage,
    CommandMessage,
    DisclosureMessage,
    Envelope,
    EscalationMessage,
    ReportMessage,
    TriageMessage,
)


@dataclass(slots=True)
class _Books:
    alerts: set[str] = field(default_factory=set)
    analyses: set[str] = field(default_factory=set)
    responses: set[str] = field(default_factory=set)
    triaged: set[str] = field(default_factory=set)
    escalated: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    disclosed: set[str] = field(default_factory=set)  # alerts whose streamed after-part the edge sent on


class Observer:
    def __init__(self, *, since: datetime | None = None) -> None:
        self.since = since
        self._lock = threading.Lock()
        self._clinical = _Books()
        self._drill = _Books()

    def observe(self, message: Envelope) -> None:
        books = self._drill if message.drill else self._clinical
        with self._lock:
            if isinstance(message, AlertMessage):
                if self.since is None or message.created_at >= self.since:
                    books.alerts.add(message.payload.alert_id)
            elif isinstance(message, AnalysisMessage):
                books.analyses.add(message.payload.alert_id)
            elif isinstance(message, CommandMessage) and message.payload.command in ("notify_wearer", "stream_strip"):
                books.responses.add(message.id)
            elif isinstance(message, TriageMessage) and message.payload.stage == "final":
                books.triaged.add(message.payload.alert_id)
            elif isinstance(message, EscalationMessage):
                books.escalated.add(message.payload.alert_id)
            elif isinstance(message, ReportMessage):
                books.reported.add(message.payload.alert_id)
            elif isinstance(message, DisclosureMessage):
                books.disclosed.add(message.payload.alert_id)

    @staticmethod
    def _summary(b: _Books) -> dict[str, int]:
        alerts = b.alerts
        lost = {a for a in alerts if a not in b.triaged or (a in b.escalated and a not in b.reported)}
        return {
            "alerts": len(alerts),
            "analyses": len(b.analyses & alerts),
            "responses": len(b.responses),
            "escalations": len(b.escalated & alerts),
            "reports": len(b.reported & alerts),
            "disclosures": len(b.disclosed & alerts),
            "lost": len(lost),
        }

    def summary(self) -> dict[str, int]:
        with self._lock:
            return self._summary(self._clinical)

    def drill_summary(self) -> dict[str, int]:
        with self._lock:
            return self._summary(self._drill)

    def settled(self) -> bool:
        """Every alert seen so far has reached its end (clinical and drill alike)."""
        with self._lock:
            return self._summary(self._clinical)["lost"] == 0 and self._summary(self._drill)["lost"] == 0
