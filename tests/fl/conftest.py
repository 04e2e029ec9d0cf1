"""One real (2048-bit, CSPRNG) coordinator key set per test session (key generation is the slow part), and every
coordinator, edge aggregator and watch a test here starts is stopped when it ends: their deadline loops and
routers' retry threads would otherwise outlive it. `recorded_specs` lets a test read every round a coordinator
announces, and `release_fleet` starts a coordinator, an edge and one watch per learner on an in-memory bus."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundConfig
from cloud_expert.coordinator.keys import CoordinatorKeys, load_or_create
from edge_hub.aggregation import EdgeAggregator
from shared.fl_codec import codec_for_round
from shared.messages import RoundPayload
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.conftest import stop_every_started
from watch_agent.trainer import FlClient, Learner


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


def release_fleet(keys: CoordinatorKeys, learners: Sequence[Learner], initial: np.ndarray, *,
                  federation: str = "watch-detector", encrypt: bool = True, min_clients: int | None = None,
                  timeout_s: float = 20.0, bus: InMemoryBus | None = None) -> tuple[Coordinator, list[FlClient]]:
    """The release-round tests' federation: one coordinator (k = every watch unless `min_clients`), one edge, a
    watch per learner (noise from OS entropy), the initial model published."""
    bus = bus or InMemoryBus()
    participants = [f"s1/watch-{i}" for i in range(len(learners))]
    round_config = RoundConfig(encrypt=encrypt, min_clients=min_clients or len(learners), quant_bits=24,
                               round_timeout_s=timeout_s, grace_s=0.5, max_clients=16, model_delta_bits=0)
    coordinator = Coordinator(Settings(site="cloud"), bus.transport("coordinator"), keys=keys, initial=initial,
                              config=round_config, participants=participants, federation=federation)
    coordinator.start()
    EdgeAggregator(Settings(site="s1"), bus.transport("edge"), edge_id="edge-1", federation=federation,
                   codec_factory=codec_for_round).start()
    clients = []
    for i, learner in enumerate(learners):
        client = FlClient(Settings(site="s1"), bus.transport(f"watch-{i}"), device_id=f"watch-{i}", learner=learner,
                          verify_key=keys.verify_key, seed=None, federation=federation)
        client.start()
        clients.append(client)
    coordinator.publish_model()
    return coordinator, clients
