"""Parameters shared by the routers, declared once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

ID_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"

Limit = Annotated[int, Query(ge=1, le=500, description="Most rows to return, newest first")]
IncludeDrills = Annotated[bool, Query(description="Include drill episodes (never clinical data)")]
ReportId = Annotated[str, Path(pattern=ID_PATTERN, description="Report id")]
