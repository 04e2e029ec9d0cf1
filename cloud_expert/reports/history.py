"""The patient's earlier episodes from the DB, reduced to `PastEpisode`s for the pure rules.

Only non-drill episodes of the same pseudonymous patient received before this one: a re-render of an old
report sees the same history as the first rendering, and drills never become anyone's history.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_expert.db.models import Episode
from cloud_expert.reports.rules import PastEpisode

#: How far back "first recorded AF" and the baselines look; the report's counts use a 30-day window.
LOOKBACK = timedelta(days=365)
MAX_EPISODES = 500


def _float(analysis: dict[str, Any] | None, key: str) -> float | None:
    value = (analysis or {}).get("payload", {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def past_episode(episode: Episode) -> PastEpisode:
    analysis = episode.analysis_json
    payload = (analysis or {}).get("payload", {})
    usable = payload.get("quality") != "unusable"
    qtc = _float(analysis, "qtc_fridericia_ms")
    if qtc is None:
        qtc = _float(analysis, "qtc_bazett_ms")
    return PastEpisode(at=episode.received_at, kind=episode.kind, level=episode.level,
                       rhythm=payload.get("rhythm") if analysis else None,
                       hr_bpm=_float(analysis, "hr_bpm") if usable else None, qtc_ms=qtc if usable else None)


def load_history(session: Session, episode: Episode) -> list[PastEpisode]:
    """Earlier non-drill episodes of `episode.patient_id` within `LOOKBACK`, oldest first. None for a drill:
    a drill report must never show a real patient's clinical history beside a rehearsal."""
    if episode.drill:
        return []
    rows = session.scalars(
        select(Episode)
        .where(Episode.patient_id == episode.patient_id, Episode.drill.is_(False), Episode.id != episode.id,
               Episode.received_at < episode.received_at,
               Episode.received_at >= episode.received_at - LOOKBACK)
        .order_by(Episode.received_at.desc())
        .limit(MAX_EPISODES)
    ).all()
    return [past_episode(e) for e in reversed(rows)]
