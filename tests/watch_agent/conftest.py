"""Every watch a test starts is stopped when it ends: its alert resender is a thread that outlives the test
otherwise, and resends (and logs) into whatever runs after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from watch_agent.app import WatchAgent


@pytest.fixture(autouse=True)
def _stop_started_watches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[WatchAgent] = []
    start = WatchAgent.start

    def tracked(self: WatchAgent, *, run: bool = True) -> None:
        started.append(self)
        start(self, run=run)

    monkeypatch.setattr(WatchAgent, "start", tracked)
    yield
    for agent in started:
        agent.stop()
