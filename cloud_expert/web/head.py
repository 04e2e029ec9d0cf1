"""HEAD wherever GET works (link checkers, monitors and proxies ask for headers only): FastAPI's routes answer
GET alone, so a HEAD is served as the GET with its body dropped. Not for the event stream, which never ends."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NO_HEAD = ("/api/queue/events",)


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"] in NO_HEAD:
            await self.app(scope, receive, send)
            return
        done = False

        async def headers_only(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.body":
                if not done:
                    done = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)
