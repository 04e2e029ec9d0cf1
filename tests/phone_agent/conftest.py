"""Every phone a test starts is stopped when it ends: its router's retry thread outlives the test otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phone_agent.app import PhoneAgent
from tests.conftest import stop_every_started


@pytest.fixture(autouse=True)
def _stop_started_phones(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, PhoneAgent)
