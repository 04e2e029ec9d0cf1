"""Signing in through the real form (the login CSRF cookie and field included), for any httpx client."""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.testclient import TestClient


def sign_in(client: httpx.Client | TestClient, username: str, password: str, *, base: str = "") -> Any:
    """GET /login, then POST it as a browser would; the client keeps the session cookie."""
    form = client.get(f"{base}/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    return client.post(f"{base}/login", data={"username": username, "password": password,
                                             "csrf_token": token.group(1), "next": "/"}, follow_redirects=False)


def csrf_of(page: str) -> str:
    """The session's CSRF token from a signed-in page (the sign-out form carries it)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)
