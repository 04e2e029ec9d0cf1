"""An `Analysis` in its bus shape (`AnalysisPayload`): what the phone publishes and what the cloud's
re-analysis of the same strip is compared in."""

from __future__ import annotations

from shared.analysis.strip import METHOD, Analysis
from shared.messages import AnalysisPayload


def to_payload(alert_id: str, result: Analysis) -> AnalysisPayload:
    """Every payload field the result has, rounded for the wire."""
    values = {name: getattr(result, name) for name in AnalysisPayload.model_fields if hasattr(result, name)}
    values.update(duration_s=round(result.duration_s, 3), analysis_ms=round(result.analysis_ms, 2),
                  events=[e.to_dict() for e in result.events],
                  candidates=[{"rhythm": c.rhythm, "probability": c.probability, "source": c.source}
                              for c in result.candidates],
                  vt_run_s=None if result.features is None or not result.vt_run_beats
                  else round(result.features.vt_run_s, 2))
    return AnalysisPayload(alert_id=alert_id, method=METHOD, **values)
