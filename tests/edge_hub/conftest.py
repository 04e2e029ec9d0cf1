"""Every hub a test starts is stopped when it ends: its timeout loop is a thread that outlives the test
otherwise, closing episodes (and logging) while later tests run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_hub.app import EdgeHub
from tests.conftest import stop_every_started


@pytest.fixture(autouse=True)
def _stop_started_hubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, EdgeHub)
