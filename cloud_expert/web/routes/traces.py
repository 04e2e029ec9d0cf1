"""`/api/episodes/{alert_id}/trace`: the episode's hops as an OpenTelemetry trace (OTLP/JSON), for a collector."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from cloud_expert.accounts import audit
from cloud_expert.traces import episode_trace
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.strips import AlertId, episode_in_scope
from cloud_expert.web.security import Reader, client_of
from shared.messages import Hop

router = APIRouter(tags=["episodes"])


@router.get("/api/episodes/{alert_id}/trace", responses={404: {"description": "No such episode"}})
def trace(request: Request, session: SessionDep, viewer: Reader, alert_id: AlertId) -> dict[str, Any]:
    """Every hop of the episode as a span under its trace id (OTLP/JSON `ExportTraceServiceRequest`): post it to
    an OTLP collector's `/v1/traces`. Hop names and hosts only, no clinical data."""
    episode = episode_in_scope(session, viewer, alert_id)
    hops = [Hop.model_validate(h) for h in episode.hops_json]
    if episode.report is not None:
        hops.append(Hop(name="report_rendered", source="worker", at=episode.report.created_at))
    audit(session, viewer.username, "viewed_trace", episode.id, None, client=client_of(request))
    session.commit()
    return episode_trace(episode.trace_id, hops, alert_id=episode.id, site=episode.site, kind=episode.kind,
                         level=episode.level, drill=episode.drill)
