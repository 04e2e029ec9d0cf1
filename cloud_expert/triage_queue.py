"""The clinicians' triage queue: open episodes by severity then age, one row per patient, and what people do
with them — acknowledge, assign, snooze, resolve with an outcome — each recorded with who and when.

A patient's ongoing episodes are one row: five escalations of one patient in three minutes are one problem
with five alerts, led by the most severe. Drills are rows of their own (never merged with a patient's
clinical episodes) and hidden unless asked for. Info-level episodes are reachable by the severity filter.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from cloud_expert.accounts import Viewer, audit
from cloud_expert.db import Episode, Report
from cloud_expert.scope import EVERYTHING, Scope, scoped
from shared.messages import utcnow

Action = Literal["acknowledge", "assign", "snooze", "resolve", "reopen"]
ACTIONS: tuple[str, ...] = get_args(Action)
SEVERITY = {"emergency": 0, "urgent": 1, "info": 2}
ACTORS = ("clinician", "technician", "operator", "admin")
QUEUE_COLUMNS = (Episode.id, Episode.site, Episode.patient_id, Episode.device_id, Episode.kind, Episode.level,
                 Episode.drill, Episode.received_at, Episode.queue_status, Episode.assigned_to, Episode.acknowledged_at,
                 Episode.acknowledged_by, Episode.snoozed_until)


class QueueError(ValueError):
    """An action the queue cannot take as asked; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class QueueFilter:
    scope: Scope = EVERYTHING  # the user's
    site: str | None = None
    patient_id: str | None = None
    levels: tuple[str, ...] = ("emergency", "urgent")
    kind: str | None = None
    statuses: tuple[str, ...] = ("open", "acknowledged")
    drills: bool = False
    since: datetime | None = None
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class QueueRow:
    """One patient's ongoing episodes (or one drill's)."""

    patient_id: str
    site: str
    drill: bool
    level: str
    kinds: list[str]
    alerts: int
    first_at: datetime
    last_at: datetime
    lead_episode: str
    episode_ids: list[str]
    status: str
    assigned_to: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    report_id: str | None
    snoozed_until: datetime | None = None
    time_to_ack_s: float | None = None
    devices: set[str] = field(default_factory=set)


def queue(session: Session, f: QueueFilter, *, now: datetime | None = None) -> tuple[list[QueueRow], int]:
    """(one page of rows, how many rows in all), most severe first, then oldest first."""
    now = now or utcnow()
    stmt = (select(Episode, Report.id).outerjoin(Report, Report.episode_id == Episode.id)
            .options(load_only(*QUEUE_COLUMNS))  # never the strips: a queue of 1,000 must not decode 1,000 of them
            .where(Episode.queue_status.in_(f.statuses), Episode.level.in_(f.levels)))
    stmt = scoped(stmt, f.scope)
    if not (f.scope.drills_only or f.drills):
        stmt = stmt.where(Episode.drill.is_(False))
    for column, value in ((Episode.site, f.site), (Episode.patient_id, f.patient_id), (Episode.kind, f.kind)):
        if value:
            stmt = stmt.where(column == value)
    if f.since is not None:
        stmt = stmt.where(Episode.received_at >= f.since)
    groups: dict[tuple[str, bool, str], list[tuple[Episode, str | None]]] = defaultdict(list)
    for episode, report_id in session.execute(stmt.order_by(Episode.received_at)).all():
        if episode.snoozed_until is not None and episode.snoozed_until > now and "open" in f.statuses:
            continue
        key = (episode.patient_id, episode.drill, episode.id if episode.drill else "")  # a drill: its own row
        groups[key].append((episode, report_id))
    rows = [_row(members) for members in groups.values()]
    rows.sort(key=lambda r: (SEVERITY.get(r.level, 9), r.first_at))
    return rows[f.offset:f.offset + f.limit], len(rows)


def _row(members: list[tuple[Episode, str | None]]) -> QueueRow:
    episodes = [e for e, _ in members]
    lead = min(episodes, key=lambda e: (SEVERITY.get(e.level, 9), e.received_at))
    acked = [e for e in episodes if e.acknowledged_at is not None]
    first_ack = min(acked, key=lambda e: e.acknowledged_at or e.received_at) if acked else None
    reports = [rid for e, rid in members if e.id == lead.id and rid]
    return QueueRow(
        patient_id=lead.patient_id, site=lead.site, drill=lead.drill, level=lead.level,
        kinds=sorted({e.kind for e in episodes}), alerts=len(episodes), first_at=episodes[0].received_at,
        last_at=episodes[-1].received_at, lead_episode=lead.id, episode_ids=[e.id for e in episodes],
        status="acknowledged" if all(e.queue_status == "acknowledged" for e in episodes) else "open",
        assigned_to=lead.assigned_to, acknowledged_by=first_ack.acknowledged_by if first_ack else None,
        acknowledged_at=first_ack.acknowledged_at if first_ack else None, report_id=reports[0] if reports else None,
        snoozed_until=lead.snoozed_until,
        time_to_ack_s=((first_ack.acknowledged_at - episodes[0].received_at).total_seconds()
                       if first_ack and first_ack.acknowledged_at else None),
        devices={e.device_id for e in episodes},
    )


def act(session: Session, viewer: Viewer, episode_ids: list[str], action: str, *, assignee: str | None = None,
        minutes: int | None = None, outcome: str | None = None, now: datetime | None = None) -> int:
    """Apply one action to episodes (a queue row's ids) within the viewer's scope; audited; the caller commits.
    Returns how many episodes changed."""
    if viewer.role not in ACTORS:
        raise QueueError(f"a {viewer.role} cannot work the queue")
    if action not in ACTIONS:
        raise QueueError(f"action must be one of {', '.join(ACTIONS)}")
    if action == "resolve" and not (outcome or "").strip():
        raise QueueError("resolving needs an outcome (what was done)")
    if action == "snooze" and not (minutes and 1 <= minutes <= 24 * 60):
        raise QueueError("snooze for 1 to 1440 minutes")
    if action == "assign" and not (assignee or "").strip():
        raise QueueError("assign to whom?")
    now = now or utcnow()
    episodes = list(session.scalars(scoped(select(Episode).where(Episode.id.in_(episode_ids[:500])), viewer.scope)))
    if not episodes:
        raise LookupError("no such episodes")
    for e in episodes:
        if action == "acknowledge":
            if e.acknowledged_at is None:
                e.acknowledged_at, e.acknowledged_by = now, viewer.username
            if e.queue_status == "open":
                e.queue_status = "acknowledged"
        elif action == "assign":
            e.assigned_to = (assignee or "").strip()[:64]
        elif action == "snooze":
            e.snoozed_until = now + timedelta(minutes=minutes or 0)
        elif action == "resolve":
            e.queue_status, e.resolved_at, e.resolved_by, e.outcome = "resolved", now, viewer.username, outcome
        else:  # reopen
            e.queue_status, e.resolved_at, e.resolved_by, e.snoozed_until = "open", None, None, None
        audit(session, viewer.username, f"queue_{action}", e.id,
              {"assign": f"to {assignee}", "snooze": f"{minutes} min", "resolve": outcome}.get(action))
    return len(episodes)


def changes_since(session: Session, f: QueueFilter, after: datetime) -> tuple[int, datetime]:
    """How many episodes in scope were received after `after`, and the newest one's time (the next `after`):
    what a live queue is told about. Keyed on the stored times, not this clock, so a commit that lands late
    is still seen."""
    stmt = scoped(select(Episode.received_at).where(Episode.received_at > after), f.scope)
    times = list(session.scalars(stmt.limit(1000)))
    return len(times), max(times, default=after)


def ack_stats(session: Session, f: QueueFilter, *, since: datetime) -> dict[str, float | int | None]:
    """Time to acknowledge over episodes received since `since` (clinical only unless an operator): the
    queue's own service level, as a metric."""
    stmt = scoped(select(Episode.received_at, Episode.acknowledged_at, Episode.queue_status).where(
        Episode.received_at >= since), f.scope)
    if not f.scope.drills_only:
        stmt = stmt.where(Episode.drill.is_(False))
    rows = session.execute(stmt).all()
    waits = sorted((ack - got).total_seconds() for got, ack, _ in rows if ack is not None)

    def pct(q: float) -> float | None:
        return round(waits[min(len(waits) - 1, int(q * len(waits)))], 1) if waits else None

    return {"episodes": len(rows), "acknowledged": len(waits),
            "open": sum(1 for _, _, status in rows if status == "open"),
            "time_to_ack_s_p50": pct(0.5), "time_to_ack_s_p90": pct(0.9)}
