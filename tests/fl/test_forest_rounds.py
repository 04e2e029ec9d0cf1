"""The DP forest as release rounds of the real protocol (in-memory bus, real packed Paillier): the forest the bus
trains is the one `FederatedForest.fit` trains in process from the same sums, the watches end up holding exactly
what the coordinator keeps, both releases carry the noise the accountant charges, and a release below k ends the
run without a model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundConfig
from cloud_expert.coordinator.forest import ForestRunError, run_forest
from cloud_expert.coordinator.keys import CoordinatorKeys
from shared.fl import forest
from shared.fl.forest import FederatedForest, ForestConfig, ForestState
from shared.fl.gam import FINE_BINS, fine_bins
from shared.messages import DpConfig, ReleaseRequest, RoundPayload
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.fl.conftest import recorded_specs, release_fleet
from tests.fl_problems import xor_problem as _xor
from watch_agent.forest_learner import ForestLearner
from watch_agent.trainer import FlClient

FEATURES = 4
BOUND = 4000.0
CONFIG = ForestConfig(trees=40, depth=6, n_bins=10, seed=7)


def _fleet(keys: CoordinatorKeys, parts: list[tuple[np.ndarray, np.ndarray]], config: ForestConfig, *,
           encrypt: bool = True, min_clients: int | None = None, timeout_s: float = 20.0
           ) -> tuple[Coordinator, list[FlClient]]:
    return release_fleet(keys, [ForestLearner(X, y) for X, y in parts], ForestState.empty(config, FEATURES).vector(),
                         federation="forest-test", encrypt=encrypt, min_clients=min_clients, timeout_s=timeout_s)


def test_the_bus_trains_the_forest_the_in_process_fit_trains(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_xor(s, 800 + 150 * s) for s in range(3)]
    coordinator, clients = _fleet(coordinator_keys, parts, CONFIG)
    labels: list[str] = []
    result = run_forest(coordinator, CONFIG, bound=BOUND, timeout_s=20.0,
                        progress=lambda _r, label: labels.append(label))
    assert labels == ["counts", "leaves"] and all(r.clients == 3 and r.status == "ok" for r in result.records)
    local = FederatedForest(CONFIG).fit([(fine_bins(X), y) for X, y in parts])
    bus_model = result.model
    np.testing.assert_array_equal(bus_model.coarse, local.coarse)
    np.testing.assert_array_equal(bus_model.feature, local.feature)  # the public structure: the seed's
    # apart only by the fixed point (24 bits over ±4,000) and float32
    np.testing.assert_allclose(bus_model.leaf_proba, local.leaf_proba, atol=1e-3)
    held_out_X, held_out_y = _xor(99, 2000)
    assert np.mean(bus_model.predict_proba(held_out_X).argmax(1) == held_out_y) > 0.8  # it learned the XOR
    assert all(c.version == coordinator.version for c in clients)
    assert all(c.global_vector is not None and np.array_equal(c.global_vector, coordinator.vector) for c in clients)


def test_the_class_weighting_is_the_configurations_over_the_bus_too(coordinator_keys: CoordinatorKeys) -> None:
    """The state carries the structure's size, not how counts become weights: that must come from the config."""
    parts = [_xor(s, 500) for s in range(2)]
    config = replace(CONFIG, trees=6, depth=4, weight_power=1.0)
    coordinator, _clients = _fleet(coordinator_keys, parts, config, encrypt=False)
    result = run_forest(coordinator, config, bound=BOUND, timeout_s=20.0)
    local = FederatedForest(config).fit([(fine_bins(X), y) for X, y in parts])
    np.testing.assert_allclose(result.state.class_weight, local.class_weight, rtol=1e-6)
    np.testing.assert_allclose(result.model.leaf_proba, local.leaf_proba, atol=1e-4)


def test_with_dp_both_releases_carry_the_charged_noise(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_xor(s, 1500) for s in range(3)]
    config = forest.calibrate(CONFIG, 8.0)
    coordinator, _clients = _fleet(coordinator_keys, parts, config, encrypt=False)
    specs = recorded_specs(coordinator)
    result = run_forest(coordinator, config, bound=BOUND, timeout_s=20.0)
    counts, leaves = (s for s in specs if s.release is not None)
    assert counts.dp.noise_scale == pytest.approx(config.count_noise_multiplier * np.sqrt(FEATURES))
    assert leaves.dp.noise_scale == pytest.approx(config.noise_multiplier * np.sqrt(config.trees))
    assert counts.params == FEATURES * FINE_BINS * 4 and leaves.params == config.trees * config.leaves * 4
    assert forest.accounted_epsilon(config) == pytest.approx(8.0, abs=0.05)
    held_out_X, held_out_y = _xor(99, 2000)
    assert np.mean(result.model.predict_proba(held_out_X).argmax(1) == held_out_y) > 0.7


def test_a_release_below_k_ends_the_run_without_a_model(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_xor(s, 400) for s in range(3)]
    coordinator, clients = _fleet(coordinator_keys, parts, CONFIG, encrypt=False, timeout_s=1.0)

    def flat_battery(_record: object, label: str) -> None:
        if label == "counts":
            clients[2].paused = True

    with pytest.raises(ForestRunError, match="too_few"):
        run_forest(coordinator, CONFIG, bound=BOUND, timeout_s=1.0, progress=flat_battery)
    state = ForestState.parse(coordinator.vector)
    assert state.stage == 1  # the bins were published; no leaves, so no model
    with pytest.raises(ValueError, match="not trained"):
        state.model()


def test_a_plan_it_cannot_keep_is_refused_before_any_release(coordinator_keys: CoordinatorKeys) -> None:
    coordinator, _ = _fleet(coordinator_keys, [_xor(0, 50), _xor(1, 50)], CONFIG, encrypt=False)
    with pytest.raises(ValueError, match="both releases are noised"):
        run_forest(coordinator, replace(CONFIG, noise_multiplier=1.0), bound=BOUND)
    with pytest.raises(ValueError, match="not this configuration"):
        run_forest(coordinator, replace(CONFIG, trees=3), bound=BOUND)


def test_a_watch_answers_only_what_the_published_state_allows(coordinator_keys: CoordinatorKeys) -> None:
    X, y = _xor(0, 200)
    state = ForestState.empty(CONFIG, FEATURES)
    learner = ForestLearner(X, y)
    coordinator = Coordinator(Settings(site="cloud"), InMemoryBus().transport("c"), keys=coordinator_keys,
                              initial=state.vector(), config=RoundConfig(encrypt=False), participants=["s1/w"])

    def spec(request: ReleaseRequest) -> RoundPayload:
        return coordinator.build_spec(0, Release(request, params=1, clip=1.0, bound=10.0, dp=DpConfig()))

    with pytest.raises(ValueError, match="bins are not published"):
        learner.release(spec(ReleaseRequest(kind="forest_leaves")), state.vector())
    with pytest.raises(ValueError, match="cannot answer a gam_counts"):
        learner.release(spec(ReleaseRequest(kind="gam_counts")), state.vector())
    counts, _ = learner.release(spec(ReleaseRequest(kind="forest_counts")), state.vector())
    assert counts.sum() == len(y) * FEATURES  # one count per feature per beat
    # each release once per training: a second answer would let two noised sums be averaged
    state.stage, state.class_weight = 1, np.ones(4)
    with pytest.raises(ValueError, match="counts were released already"):
        learner.release(spec(ReleaseRequest(kind="forest_counts")), state.vector())
    leaves, _ = learner.release(spec(ReleaseRequest(kind="forest_leaves")), state.vector())
    assert leaves.sum() == len(y) * CONFIG.trees  # one count per tree per beat
    state.stage, state.leaf_proba[:] = 2, 0.25
    with pytest.raises(ValueError, match="leaves were released already"):
        learner.release(spec(ReleaseRequest(kind="forest_leaves")), state.vector())
    with pytest.raises(ValueError, match="reads 4 features"):
        ForestLearner(X[:, :3], y).release(spec(ReleaseRequest(kind="forest_counts")), state.vector())


def test_the_state_vector_round_trips_and_anything_else_is_refused() -> None:
    state = ForestState.empty(CONFIG, FEATURES)
    state.coarse = np.tile(np.minimum(np.arange(FINE_BINS) // 30, CONFIG.n_bins - 1), (FEATURES, 1))
    state.class_weight = np.array([0.5, 2.0, 3.0, 4.0])
    state.leaf_proba[:] = 0.25
    state.stage = 2
    again = ForestState.parse(state.vector())
    assert again.stage == 2 and np.array_equal(again.coarse, state.coarse)
    assert np.array_equal(again.feature, state.feature) and np.array_equal(again.cut, state.cut)
    assert np.allclose(again.model().raw(np.zeros((2, FEATURES))), np.log(0.25))
    vector = state.vector()
    for broken, why in ((vector[:-1], "header says"), (np.r_[3.0, vector[1:]], "tag"),
                        (_with(vector, 3, 40.0), "out of range"), (_with(vector, 20, 99.0), "out of range"),
                        (_with(vector, len(vector) - 1, np.nan), "non-finite"),
                        (_with(vector, 20, 0.5), "not an integer"), (_with(vector, 6, 3.0), "out of range"),
                        (_with(vector, 5, 3.0), "out of range"),
                        (_with(vector, len(vector) - 1, -0.25), "distributions"),
                        (_with(_with(vector, 2, 2000.0), 3, 12.0), "out of range")):
        with pytest.raises(ValueError, match=why):
            ForestState.parse(broken)


def _with(vector: np.ndarray, index: int, value: float) -> np.ndarray:
    out = vector.copy()
    out[index] = value
    return out
