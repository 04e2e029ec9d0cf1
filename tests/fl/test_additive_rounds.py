"""The federated additive model as release rounds of the real protocol (in-memory bus, real packed Paillier): the
model the bus yields is the model `FederatedGam.fit` computes in process on the same wearers, the watches end up
holding exactly what the coordinator keeps, k still guards every decryption, and a watch whose release would not
fit the announced range sends nothing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from cloud_expert.coordinator.additive import AdditiveRunError, run_additive
from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundConfig, RoundRecord
from cloud_expert.coordinator.keys import CoordinatorKeys
from shared.fl import gam
from shared.fl.gam import FederatedGam, GamClient, GamConfig, fine_bins
from shared.messages import DpConfig, ReleaseRequest, RoundPayload, UpdateMessage, decode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.fl.conftest import recorded_specs, release_fleet
from tests.fl_problems import additive_problem
from watch_agent.additive_learner import AdditiveLearner
from watch_agent.trainer import FlClient

FEATURES = 4
BOUND = 4000.0


def _problem(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return additive_problem(seed, n, missing=False)


def _fleet(keys: CoordinatorKeys, parts: list[tuple[np.ndarray, np.ndarray]], config: GamConfig, *,
           encrypt: bool = True, min_clients: int | None = None, timeout_s: float = 20.0,
           bus: InMemoryBus | None = None) -> tuple[Coordinator, list[FlClient]]:
    return release_fleet(keys, [AdditiveLearner(X, y) for X, y in parts], gam.empty_state(FEATURES, config),
                         encrypt=encrypt, min_clients=min_clients, timeout_s=timeout_s, bus=bus)


def test_the_bus_trains_the_model_the_in_process_fit_computes(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 300 + 150 * s) for s in range(3)]
    config = GamConfig(epochs=3, n_bins=8, seed=5)
    coordinator, clients = _fleet(coordinator_keys, parts, config)
    labels: list[str] = []
    result = run_additive(coordinator, config, FEATURES, bound=BOUND, progress=lambda _r, label: labels.append(label))

    assert labels[0] == "counts" and len(labels) == 1 + 3 * FEATURES and result.skipped == 0
    assert result.gradient_releases == 3 * FEATURES and result.epsilon(config, 1e-5) is None  # no DP asked
    assert all(r.clients == 3 and r.status == "ok" for r in result.records)
    local = FederatedGam(config).fit([GamClient(fine_bins(X), y) for X, y in parts])
    assert np.array_equal(result.model.coarse, local.coarse)  # the same bins from the decrypted counts
    np.testing.assert_allclose(result.model.class_weight, local.class_weight, rtol=1e-5)
    # the same schedule and steps: apart only by the fixed point (24 bits over ±4,000) and float32
    assert np.abs(result.model.shapes - local.shapes).max() < 1e-3
    X = np.concatenate([p[0] for p in parts])
    assert np.mean(result.model.predict_proba(X).argmax(1) == local.predict_proba(X).argmax(1)) > 0.995
    held_out_X, held_out_y = _problem(99, 2000)
    assert np.mean(result.model.predict_proba(held_out_X).argmax(1) == held_out_y) > 0.85  # it learned
    # every watch holds exactly the coordinator's model: each release was computed against it
    assert all(c.version == coordinator.version == 1 + 3 * FEATURES for c in clients)
    assert all(c.global_vector is not None and np.array_equal(c.global_vector, coordinator.vector) for c in clients)


def test_with_dp_each_release_carries_its_noise_and_the_bill_counts_what_was_decrypted(
        coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 2000) for s in range(3)]
    config = gam.calibrate(GamConfig(epochs=2, n_bins=8), features=FEATURES, epsilon=8.0)
    coordinator, _clients = _fleet(coordinator_keys, parts, config, encrypt=False)
    specs = recorded_specs(coordinator)
    totals: list[np.ndarray] = []
    run_release = coordinator.run_release

    def capturing(round_id: int, release: Release,
                  step: Callable[[np.ndarray, int], np.ndarray | None]) -> RoundRecord:
        def seen(total: np.ndarray, n: int) -> np.ndarray | None:
            totals.append(total.copy())
            return step(total, n)

        return run_release(round_id, release, seen)

    coordinator.run_release = capturing  # type: ignore[method-assign]
    result = run_additive(coordinator, config, FEATURES, bound=BOUND)
    # the decrypted count table is the wearers' true one plus Gaussian noise of the announced σ (3 shares of σ/√3)
    exact = np.sum([GamClient(fine_bins(X), y).counts(4) for X, y in parts], axis=0).ravel()
    noise = totals[0] - exact
    assert np.std(noise) == pytest.approx(specs[0].dp.noise_scale, rel=0.1) and abs(np.mean(noise)) < 0.5

    assert specs[0].release == ReleaseRequest(kind="gam_counts") and specs[0].task == "release"
    np.testing.assert_allclose(specs[0].dp.noise_scale, config.count_noise_multiplier * np.sqrt(FEATURES))
    assert {s.dp.noise_scale for s in specs[1:]} == {config.noise_multiplier * config.clip}
    assert all(s.dp.planned_clients == 3 and s.clip_norm == config.clip for s in specs[1:])
    assert result.epsilon(config, 1e-5) == pytest.approx(8.0, abs=0.05)
    held_out_X, held_out_y = _problem(99, 2000)
    assert np.mean(result.model.predict_proba(held_out_X).argmax(1) == held_out_y) > 0.7


def test_a_release_below_k_is_not_decrypted_and_the_term_keeps_its_shape(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 400) for s in range(3)]
    config = GamConfig(epochs=1, n_bins=8)
    coordinator, clients = _fleet(coordinator_keys, parts, config, encrypt=False, timeout_s=1.0)
    clients[2].paused = True
    with pytest.raises(AdditiveRunError, match="count release"):
        run_additive(coordinator, config, FEATURES, bound=BOUND, count_timeout_s=1.0)
    assert coordinator.version == 0  # nothing decrypted, nothing published

    clients[2].paused = False
    result_config = GamConfig(epochs=1, n_bins=8, seed=1)
    coordinator2, clients2 = _fleet(coordinator_keys, parts, result_config, encrypt=False, timeout_s=1.0)
    dropped: list[int] = []

    def drop_after_counts(record: object, label: str) -> None:
        if label == "counts":
            clients2[0].paused = True
            dropped.append(1)

    result = run_additive(coordinator2, result_config, FEATURES, bound=BOUND, progress=drop_after_counts)
    assert dropped and result.skipped == FEATURES and result.gradient_releases == 0
    assert not result.model.shapes.any()  # every term kept its (flat) shape
    assert coordinator2.version == 1  # the count release's version alone


def test_a_watch_that_drops_out_mid_training_costs_only_its_own_sums(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 600) for s in range(4)]
    config = GamConfig(epochs=2, n_bins=8)
    coordinator, clients = _fleet(coordinator_keys, parts, config, encrypt=False, min_clients=3, timeout_s=1.0)

    def flat_battery(record: object, label: str) -> None:
        if label == "counts":
            clients[3].paused = True

    asked: list[int] = []
    real = coordinator.build_spec

    def recorded(round_id: int, release: Release | None = None) -> RoundPayload:
        asked.append(len(coordinator.participants))
        return real(round_id, release)

    coordinator.build_spec = recorded  # type: ignore[method-assign]
    result = run_additive(coordinator, config, FEATURES, bound=BOUND, progress=flat_battery)
    assert result.skipped == 0 and result.gradient_releases == 2 * FEATURES  # k = 3 of 4 still answer
    assert [r.clients for r in result.records] == [4] + [3] * (2 * FEATURES)
    assert all("s1/watch-3" not in r.contributors for r in result.records[1:])
    # it is waited for once per epoch (each epoch asks everyone again), not at every release: one flat battery
    # would otherwise hold all of them to their deadline
    assert asked == [4] + ([4] + [3] * (FEATURES - 1)) * 2
    assert clients[3].version == coordinator.version  # it still installs every signed version


def test_values_beyond_the_announced_range_are_clipped_counted_and_still_sent(
        coordinator_keys: CoordinatorKeys) -> None:
    """Refusing would make whether a watch answers depend on its data; clipping each value keeps one beat's
    effect within the clip, so the watch answers anyway and says it clipped."""
    parts = [_problem(s, 400) for s in range(2)]
    config = GamConfig(epochs=1, n_bins=8)
    bus = InMemoryBus()
    coordinator, clients = _fleet(coordinator_keys, parts, config, encrypt=False, timeout_s=5.0, bus=bus)
    result = run_additive(coordinator, config, FEATURES, bound=5.0)  # 400 beats per wearer: cells above 5
    assert all(r.status == "ok" and r.clients == 2 for r in result.records)
    assert all(c.counters.get("fl.release_clipped") >= 1 for c in clients)
    # and no release tells the edge how many beats its wearer has
    updates = [decode(p, max_bytes=1 << 24) for t, p, *_ in bus.published if "/update/" in t]
    assert updates and all(isinstance(u, UpdateMessage) and u.payload.samples == 0 for u in updates)


def test_a_training_learner_cannot_answer_a_release_round(coordinator_keys: CoordinatorKeys) -> None:
    from tests.fl.test_protocol import ToyLearner

    bus = InMemoryBus()
    client = FlClient(Settings(site="s1"), bus.transport("w"), device_id="w", learner=ToyLearner(np.zeros(3)),
                      verify_key=coordinator_keys.verify_key)
    coordinator = Coordinator(Settings(site="cloud"), bus.transport("c"), keys=coordinator_keys,
                              initial=np.zeros(3, dtype=np.float32), config=RoundConfig(encrypt=False),
                              participants=["s1/w"])
    spec = coordinator.build_spec(0, Release(ReleaseRequest(kind="gam_counts"), params=3, clip=1.0, bound=10.0,
                                             dp=DpConfig()))
    with pytest.raises(TypeError, match="cannot answer release rounds"):
        client.send_update(spec, np.zeros(3, dtype=np.float32))


def test_a_round_names_what_to_release_only_when_it_is_a_release_round() -> None:
    from pydantic import ValidationError

    base = RoundPayload(round_id=0, model_version=0, model_sha256="0" * 64, params=3, clip_norm=1.0,
                        deadline="2030-01-01T00:00:00Z").model_dump()
    with pytest.raises(ValidationError, match="names what to release"):
        RoundPayload.model_validate({**base, "task": "release"})
    with pytest.raises(ValidationError, match="names what to release"):
        RoundPayload.model_validate({**base, "release": {"kind": "gam_counts"}})
    release = RoundPayload.model_validate({**base, "task": "release",
                                           "release": {"kind": "gam_gradients", "term": 2}}).release
    assert release is not None and release.term == 2


def test_a_fedavg_round_is_written_as_before_release_rounds_existed() -> None:
    """Parties not yet upgraded refuse unknown fields: a train round must not carry `task` or `release`."""
    import json

    base = RoundPayload(round_id=0, model_version=0, model_sha256="0" * 64, params=3, clip_norm=1.0,
                        deadline="2030-01-01T00:00:00Z")
    written = json.loads(base.model_dump_json())
    assert "task" not in written and "release" not in written
    assert RoundPayload.model_validate(written) == base
    release = base.model_copy(update={"task": "release", "release": ReleaseRequest(kind="gam_counts")})
    # a release's fields at their defaults are left out too (the trees' fields among them)
    assert json.loads(release.model_dump_json())["release"] == {"kind": "gam_counts"}


def test_a_release_round_on_an_async_coordinator_is_refused(coordinator_keys: CoordinatorKeys) -> None:
    coordinator = Coordinator(Settings(site="cloud"), InMemoryBus().transport("c"), keys=coordinator_keys,
                              initial=np.zeros(3, dtype=np.float32), participants=["s1/w"],
                              config=RoundConfig(encrypt=False, mode="async", buffer_size=2))
    release = Release(ReleaseRequest(kind="gam_counts"), params=3, clip=1.0, bound=10.0, dp=DpConfig())
    with pytest.raises(ValueError, match="synchronous"):
        coordinator.run_release(0, release, lambda total, _n: total)


@pytest.mark.parametrize("vector", [[7.0], [0.0, 1, 1, 1], [7.0, np.inf, 1, 1], [7.0, 1.5, 8, 4],
                                    [7.0, 1, 8, 4, 1.0]])
def test_a_state_vector_that_is_not_one_is_refused(vector: list[float]) -> None:
    with pytest.raises(ValueError, match="additive model state"):
        gam.parse_state(np.asarray(vector))
