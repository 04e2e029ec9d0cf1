"""`/api/alerts`: escalated episodes, newest first, with their report status (within the user's sites)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from cloud_expert.accounts import audit
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.common import IncludeDrills, Limit
from cloud_expert.web.schemas import AlertPublic
from cloud_expert.web.security import Reader, client_of

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertPublic])
def list_alerts(request: Request, session: SessionDep, viewer: Reader, limit: Limit = 50,
                include_drills: IncludeDrills = True) -> list[AlertPublic]:
    alerts = crud.list_alerts(session=session, limit=limit, include_drills=include_drills, scope=viewer.scope)
    audit(session, viewer.username, "listed_alerts", None, f"{len(alerts)} rows", client=client_of(request))
    session.commit()
    return alerts
