"""`/` and `/queue` (the live triage queue: the landing page), `/api/queue` (its rows), `/api/queue/actions`
(acknowledge, assign, snooze, resolve, reopen) and `/api/queue/events` (server-sent events: a new episode).

The page never reloads itself: it listens on the event stream and fetches the rows again when told, so a
pushed escalation shows within about a second of reaching the cloud DB.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cloud_expert.accounts import Viewer, audit
from cloud_expert.triage_queue import QueueError, QueueFilter, ack_stats, act, changes_since, queue
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.security import Reader, client_of
from shared.messages import utcnow

router = APIRouter(tags=["queue"])

POLL_S = 0.5
HEARTBEAT_S = 15.0


class QueueRowPublic(BaseModel):
    patient_id: str
    site: str
    drill: bool
    level: str
    kinds: list[str]
    alerts: int = Field(description="Ongoing episodes of this patient in the row")
    first_at: datetime
    last_at: datetime
    lead_episode: str = Field(description="The most severe (then oldest) episode: the row's actions name all")
    episode_ids: list[str]
    status: str
    assigned_to: str | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    time_to_ack_s: float | None
    report_id: str | None
    snoozed_until: datetime | None


class QueuePage(BaseModel):
    rows: list[QueueRowPublic]
    total: int
    limit: int
    offset: int


class QueueAction(BaseModel):
    episode_ids: list[str] = Field(min_length=1, max_length=500)
    action: Literal["acknowledge", "assign", "snooze", "resolve", "reopen"]
    assignee: str | None = Field(None, max_length=64)
    minutes: int | None = Field(None, ge=1, le=1440)
    outcome: str | None = Field(None, max_length=2000)


Levels = Annotated[list[Literal["emergency", "urgent", "info"]] | None,
                   Query(description="Severities to show (default emergency and urgent)")]
Statuses = Annotated[list[Literal["open", "acknowledged", "resolved"]] | None,
                     Query(description="Queue states to show (default open and acknowledged)")]


def _filter(viewer: Viewer, *, site: str | None = None, patient_id: str | None = None,
            level: list[str] | None = None, kind: str | None = None, status: list[str] | None = None,
            drills: bool = False, since: datetime | None = None, limit: int = 50, offset: int = 0) -> QueueFilter:
    return QueueFilter(scope=viewer.scope, site=site, patient_id=patient_id,
                       levels=tuple(level or ("emergency", "urgent")), kind=kind,
                       statuses=tuple(status or ("open", "acknowledged")), drills=drills, since=since, limit=limit,
                       offset=offset)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/queue", response_class=HTMLResponse, include_in_schema=False)
def queue_page(request: Request, templates: TemplatesDep, viewer: Reader) -> HTMLResponse:
    return templates.TemplateResponse(request, "queue.html", {"viewer": viewer})


@router.get("/api/queue", response_model=QueuePage)
def queue_rows(request: Request, session: SessionDep, viewer: Reader, site: str | None = None,
               patient_id: str | None = None, level: Levels = None, kind: str | None = None,
               status: Statuses = None, drills: bool = False, since: datetime | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0) -> QueuePage:
    """Open episodes, most severe then oldest first, one row per patient (drills apart, hidden by default)."""
    f = _filter(viewer, site=site, patient_id=patient_id, level=list(level or []), kind=kind,
                status=list(status or []), drills=drills, since=since, limit=limit, offset=offset)
    rows, total = queue(session, f)
    audit(session, viewer.username, "viewed_queue", None, f"{len(rows)} of {total} rows", client=client_of(request))
    session.commit()
    return QueuePage(rows=[QueueRowPublic.model_validate(r, from_attributes=True) for r in rows], total=total,
                     limit=limit, offset=offset)


class QueueStats(BaseModel):
    episodes: int
    acknowledged: int
    open: int
    time_to_ack_s_p50: float | None
    time_to_ack_s_p90: float | None
    hours: int


@router.get("/api/queue/stats", response_model=QueueStats)
def queue_stats(session: SessionDep, viewer: Reader,
                hours: Annotated[int, Query(ge=1, le=24 * 90, description="Look back this many hours")] = 24
                ) -> QueueStats:
    """Time to acknowledge (p50, p90) and what is still open, over the last `hours`: the queue's service level."""
    stats = ack_stats(session, _filter(viewer), since=utcnow() - timedelta(hours=hours))
    return QueueStats.model_validate({**stats, "hours": hours})


@router.post("/api/queue/actions", responses={404: {"description": "No such episodes for this user"},
                                              409: {"description": "Not possible as asked"}})
def queue_action(session: SessionDep, viewer: Reader, body: QueueAction) -> dict[str, int]:
    """Acknowledge, assign, snooze, resolve (with an outcome) or reopen a row's episodes; recorded."""
    try:
        changed = act(session, viewer, body.episode_ids, body.action, assignee=body.assignee,
                      minutes=body.minutes, outcome=body.outcome)
    except LookupError:
        raise HTTPException(status_code=404, detail="no such episodes") from None
    except QueueError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    session.commit()
    return {"changed": changed}


@router.get("/api/queue/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def queue_events(request: Request, viewer: Reader) -> StreamingResponse:
    """Server-sent events: `episode` when episodes in the user's scope arrive (then fetch /api/queue)."""
    f = _filter(viewer, drills=True)
    factory = request.app.state.sessions

    def count_new(after: datetime) -> tuple[int, datetime]:
        with factory() as session:
            return changes_since(session, f, after)

    async def stream() -> AsyncIterator[str]:
        last, quiet = utcnow() - timedelta(seconds=1), 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            new, newest = await run_in_threadpool(count_new, last)
            if new:
                last, quiet = newest, 0.0
                yield f"event: episode\ndata: {json.dumps({'new': new, 'at': newest.isoformat()})}\n\n"
            elif (quiet := quiet + POLL_S) >= HEARTBEAT_S:
                quiet = 0.0
                yield ": still here\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
