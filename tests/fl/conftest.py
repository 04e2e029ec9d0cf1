"""One real (2048-bit, CSPRNG) coordinator key set per test session (key generation is the slow part), and every
coordinator, edge aggregator and watch a test here starts is stopped when it ends: their deadline loops and
routers' retry threads would otherwise outlive it. `recorded_specs` lets a test read every round a coordinator
announces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_expert.coordinator.coordinator import Coordinator, Release
from cloud_expert.coordinator.keys import CoordinatorKeys, load_or_create
from edge_hub.aggregation import EdgeAggregator
from shared.messages import RoundPayload
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


def recorded_specs(coordinator: Coordinator) -> list[RoundPayload]:
    """Every round `coordinator` announces from now on, in order (its `build_spec` wrapped)."""
    specs: list[RoundPayload] = []
    real = coordinator.build_spec

    def recorded(round_id: int, release: Release | None = None) -> RoundPayload:
        specs.append(real(round_id, release))
        return specs[-1]

    coordinator.build_spec = recorded  # type: ignore[method-assign]
    return specs
