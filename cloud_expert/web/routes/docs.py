"""`/docs` (the API reference, rendered here from the OpenAPI schema) and `/favicon.ico`.

FastAPI's Swagger UI and ReDoc load their scripts from a CDN: on a clinic network without internet they
render a blank page. This page needs nothing but this server.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cloud_expert.web.deps import TemplatesDep

router = APIRouter(include_in_schema=False)

#: a red heart with a trace, as SVG: small enough to inline, no file to ship
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><path fill="#c62828" d="M32 58 6 32C-2 23 3 6 17 6c7 '
    '0 11 4 15 9 4-5 8-9 15-9 14 0 19 17 11 26Z"/><path fill="none" stroke="#fff" stroke-width="4" '
    'd="M8 32h14l4-9 6 18 5-13 3 4h16"/></svg>'
)


@router.api_route("/docs", methods=["GET", "HEAD"], response_class=HTMLResponse)
def api_docs(request: Request, templates: TemplatesDep) -> HTMLResponse:
    return templates.TemplateResponse(request, "api_docs.html", {"spec": request.app.openapi()})


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})
