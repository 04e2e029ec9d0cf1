"""An `Analysis` in its bus shape (`AnalysisPayload`): what the phone publishes and what the cloud's
re-analysis of the same strip is compared in."""

from __future__ import annotations

from shared.analysis.events import Event
from shared.analysis.strip import METHOD, Analysis
from shared.messages import AnalysisPayload

MAX_EVENTS = 64  # AnalysisPayload.events' limit
_PRIORITY = ("vf", "asystole", "vt", "extreme_bradycardia", "extreme_tachycardia", "af", "pause")


def wire_events(events: list[Event]) -> list[Event]:
    """At most `MAX_EVENTS`, the most urgent kinds first when there are more, then in time order."""
    if len(events) <= MAX_EVENTS:
        return events
    kept = sorted(events, key=lambda e: (_PRIORITY.index(e.type), e.start_s))[:MAX_EVENTS]
    return sorted(kept, key=lambda e: (e.start_s, e.type))


def to_payload(alert_id: str, result: Analysis) -> AnalysisPayload:
    """Every payload field the result has, rounded for the wire (a very long strip's events capped)."""
    values = {name: getattr(result, name) for name in AnalysisPayload.model_fields if hasattr(result, name)}
    events = wire_events(result.events)
    notes = list(result.notes)
    if len(events) < len(result.events):
        notes = [f"{len(result.events) - len(events)} lesser events not sent (of {len(result.events)})", *notes]
    values.update(duration_s=round(result.duration_s, 3), analysis_ms=round(result.analysis_ms, 2),
                  notes=notes[:16], events=[e.to_dict() for e in events],
                  candidates=[{"rhythm": c.rhythm, "probability": c.probability, "source": c.source}
                              for c in result.candidates],
                  vt_run_s=None if result.features is None or not result.vt_run_beats
                  else round(result.features.vt_run_s, 2))
    return AnalysisPayload(alert_id=alert_id, method=METHOD, **values)
