"""`/api/alerts`: escalated episodes, newest first, with their report status."""

from __future__ import annotations

from fastapi import APIRouter

from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.common import IncludeDrills, Limit
from cloud_expert.web.schemas import AlertPublic

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


@router.get("", response_model=list[AlertPublic])
def list_alerts(session: SessionDep, limit: Limit = 50, include_drills: IncludeDrills = True) -> list[AlertPublic]:
    return crud.list_alerts(session=session, limit=limit, include_drills=include_drills)
