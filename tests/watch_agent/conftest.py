"""Every watch a test starts is stopped when it ends: its alert resender is a thread that outlives the test
otherwise, and resends (and logs) into whatever runs after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import stop_every_started
from watch_agent.app import WatchAgent


@pytest.fixture(autouse=True)
def _stop_started_watches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, WatchAgent)
