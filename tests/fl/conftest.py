"""One real (2048-bit, CSPRNG) coordinator key set per test session (key generation is the slow part), and every
coordinator, edge aggregator and watch a test here starts is stopped when it ends: their deadline loops and
routers' retry threads would otherwise outlive it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_expert.coordinator.coordinator import Coordinator
from cloud_expert.coordinator.keys import CoordinatorKeys, load_or_create
from edge_hub.aggregation import EdgeAggregator
from tests.conftest import stop_every_started
from watch_agent.trainer import FlClient


@pytest.fixture(autouse=True)
def _stop_coordinators(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, Coordinator)


@pytest.fixture(autouse=True)
def _stop_edges(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, EdgeAggregator)


@pytest.fixture(autouse=True)
def _stop_watches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from stop_every_started(monkeypatch, FlClient)


@pytest.fixture(scope="session")
def coordinator_keys(tmp_path_factory: pytest.TempPathFactory) -> CoordinatorKeys:
    return load_or_create(Path(tmp_path_factory.mktemp("keys")))
