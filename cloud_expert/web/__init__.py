"""The clinicians' dashboard and API (FastAPI): `create_app(settings)`."""

from cloud_expert.web.main import create_app

__all__ = ["create_app"]
