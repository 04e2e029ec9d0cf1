"""The federated trees as release rounds of the real protocol (in-memory bus, real packed Paillier): the trees the
bus grows are the trees `FederatedBoosting.fit` grows in process from the same sums, the watches end up holding
exactly what the coordinator keeps, DP noise rides on every release and is accounted, and a release below k stops
the run instead of growing a tree from nothing."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundConfig
from cloud_expert.coordinator.keys import CoordinatorKeys
from cloud_expert.coordinator.trees import TreesRunError, run_trees
from shared.fl.tree_state import TreeState, TreeStateError
from shared.fl.trees import (
    Client,
    FederatedBoosting,
    TreeConfig,
    bin_features,
    dp_epsilon,
    edges_from_counts,
    grid_counts,
    sketch_grid,
)
from shared.messages import DpConfig, ReleaseRequest, RoundPayload
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.fl.conftest import recorded_specs, release_fleet
from tests.fl_problems import additive_problem as _problem
from watch_agent.trainer import FlClient
from watch_agent.tree_learner import TreeLearner

FEATURES = 4
BOUND = 4000.0
CELLS = 64
N_BINS = 10


def _balanced(counts: np.ndarray) -> np.ndarray:
    return np.asarray(counts.sum() / (len(counts) * np.maximum(counts, 1.0)))


def _fleet(keys: CoordinatorKeys, parts: list[tuple[np.ndarray, np.ndarray]], config: TreeConfig, *,
           encrypt: bool = True, min_clients: int | None = None, timeout_s: float = 20.0
           ) -> tuple[Coordinator, list[FlClient]]:
    return release_fleet(keys, [TreeLearner(X, y) for X, y in parts],
                         TreeState.empty(config, FEATURES, N_BINS).vector(), federation="trees-test", encrypt=encrypt,
                         min_clients=min_clients, timeout_s=timeout_s)


@pytest.mark.parametrize("config", [TreeConfig(rounds=3, max_depth=2),
                                    TreeConfig(rounds=2, max_depth=4, max_leaves=5, min_samples_leaf=15, lam=0.0,
                                               min_hessian=1e-3)], ids=["level-wise", "best-first"])
def test_the_bus_grows_the_trees_the_in_process_fit_grows(coordinator_keys: CoordinatorKeys,
                                                          config: TreeConfig) -> None:
    parts = [_problem(s, 300 + 150 * s) for s in range(3)]
    coordinator, clients = _fleet(coordinator_keys, parts, config)
    labels: list[str] = []
    result = run_trees(coordinator, config, bound=BOUND, cells=CELLS, class_weights=_balanced, sketch_timeout_s=20.0,
                       progress=lambda _r, label: labels.append(label))
    assert labels[:2] == ["class counts", "sketch"]
    assert all(r.clients == 3 and r.status == "ok" for r in result.records)
    # in process, from the same sums: exact class counts, the same grid's edges, the same growth function
    counts = np.sum([np.bincount(y, minlength=4) for _, y in parts], axis=0).astype(float)
    weights = _balanced(counts)
    edges = edges_from_counts(np.sum([grid_counts(X, sketch_grid(CELLS)) for X, _ in parts], axis=0),
                              sketch_grid(CELLS), N_BINS)
    np.testing.assert_allclose(result.state.edges, edges.astype(np.float32))
    np.testing.assert_allclose(result.state.class_weight, weights, rtol=1e-5)
    booster = FederatedBoosting(config)
    local = booster.fit([Client(bin_features(X, edges), y, weights[y]) for X, y in parts], edges)
    assert len(labels) == 2 + booster.releases  # one release for every sum the in-process fit took
    bus_model = result.state.model()
    for bus_round, local_round in zip(bus_model.trees, local.trees, strict=True):
        for bus_tree, local_tree in zip(bus_round, local_round, strict=True):
            assert (bus_tree.feature, bus_tree.threshold_bin) == (local_tree.feature, local_tree.threshold_bin)
            # apart only by the fixed point (24 bits over ±4,000) and float32
            np.testing.assert_allclose(bus_tree.value, local_tree.value, atol=2e-3)
    held_out_X, held_out_y = _problem(99, 2000)
    assert np.mean(bus_model.predict_proba(held_out_X).argmax(1) == held_out_y) > 0.85  # it learned
    # every watch holds exactly the coordinator's state: each release was computed against it
    assert all(c.version == coordinator.version for c in clients)
    assert all(c.global_vector is not None and np.array_equal(c.global_vector, coordinator.vector) for c in clients)
    assert TreeState.parse(coordinator.vector).rounds_done == config.rounds


def test_with_dp_every_release_carries_its_noise_and_the_bill_is_the_in_process_one(
        coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 1500) for s in range(3)]
    config = TreeConfig(rounds=2, max_depth=2, clip=2.0, min_hessian=5.0, noise_multiplier=3.0,
                        private_edges=True)
    coordinator, _clients = _fleet(coordinator_keys, parts, config, encrypt=False)
    specs = recorded_specs(coordinator)
    class_sigma = 3.0 * 2.0 * np.sqrt(2 * FEATURES)
    result = run_trees(coordinator, config, bound=BOUND, cells=CELLS, class_weights=_balanced, sketch_timeout_s=20.0,
                       class_sigma=class_sigma)
    histograms = [s for s in specs if s.release is not None and s.release.kind == "tree_histogram"]
    assert specs[0].dp.noise_scale == pytest.approx(class_sigma)
    assert specs[1].dp.noise_scale == pytest.approx(3.0 * np.sqrt(FEATURES))  # the sketch: sensitivity √features
    assert all(s.dp.noise_scale == pytest.approx(3.0 * 2.0 * np.sqrt(2 * FEATURES)) for s in histograms)
    assert all(s.clip_norm == 2.0 and s.dp.planned_clients == 3 for s in histograms)
    # the accountant's count: every level of every class's tree, each round (+ class counts and the sketch)
    assert len(histograms) == config.rounds * config.n_classes * (config.max_depth + 1)
    assert 0 < dp_epsilon(config, 3.0) < 50
    held_out_X, held_out_y = _problem(99, 2000)
    assert np.mean(result.state.model().predict_proba(held_out_X).argmax(1) == held_out_y) > 0.7


def test_a_release_below_k_stops_the_run_with_the_finished_rounds_kept(coordinator_keys: CoordinatorKeys) -> None:
    parts = [_problem(s, 400) for s in range(3)]
    config = TreeConfig(rounds=3, max_depth=1)
    coordinator, clients = _fleet(coordinator_keys, parts, config, encrypt=False, timeout_s=1.0)
    seen: list[str] = []

    def flat_battery(_record: object, label: str) -> None:
        seen.append(label)
        if label.startswith("round 2"):
            clients[2].paused = True

    with pytest.raises(TreesRunError, match="too_few"):
        run_trees(coordinator, config, bound=BOUND, cells=CELLS, class_weights=_balanced, sketch_timeout_s=20.0,
                  progress=flat_battery)
    state = TreeState.parse(coordinator.vector)
    assert state.rounds_done == 1 and len(state.model().trees) == 1  # round 1 finished, nothing after it


def test_a_watch_refuses_a_release_about_nodes_that_are_not_open_leaves(coordinator_keys: CoordinatorKeys) -> None:
    config = TreeConfig(rounds=1, max_depth=2)
    X, y = _problem(0, 200)
    state = TreeState.empty(config, FEATURES, N_BINS)
    learner = TreeLearner(X, y)
    coordinator = Coordinator(Settings(site="cloud"), InMemoryBus().transport("c"), keys=coordinator_keys,
                              initial=state.vector(), config=RoundConfig(encrypt=False), participants=["s1/w"])

    def spec(request: ReleaseRequest) -> RoundPayload:
        return coordinator.build_spec(0, Release(request, params=1, clip=1.0, bound=10.0, dp=DpConfig()))

    with pytest.raises(ValueError, match="no tree 0 to grow"):  # no weights and edges yet
        learner.release(spec(ReleaseRequest(kind="tree_histogram", nodes=[0])), state.vector())
    state.ready = True
    state.trees[0][0].add()
    with pytest.raises(ValueError, match="not all leaves"):
        learner.release(spec(ReleaseRequest(kind="tree_histogram", nodes=[3])), state.vector())
    with pytest.raises(ValueError, match="cannot answer a gam_counts"):
        learner.release(spec(ReleaseRequest(kind="gam_counts")), state.vector())
    counts, _ = learner.release(spec(ReleaseRequest(kind="tree_classes")), state.vector())
    assert counts.tolist() == np.bincount(y, minlength=4).tolist()


def test_the_state_vector_round_trips_and_anything_else_is_refused() -> None:
    config = TreeConfig(rounds=2, max_depth=2)
    state = TreeState.empty(config, FEATURES, N_BINS)
    state.edges = np.tile(np.linspace(-1, 1, N_BINS - 2), (FEATURES, 1))
    tree = state.trees[0][1]
    tree.add()
    from shared.fl.trees import Split

    left, right = tree.split(0, Split(feature=2, threshold_bin=4, gain=1.0))
    tree.value[left], tree.value[right] = -0.5, 0.25
    for k in (0, 2, 3):  # a finished round has all its trees: here single leaves
        state.trees[0][k].add()
    state.rounds_done, state.ready = 1, True
    again = TreeState.parse(state.vector())
    assert again.trees[0][1].feature == [2, -1, -1] and again.trees[0][1].value == [0.0, -0.5, 0.25]
    assert again.rounds_done == 1 and again.ready and np.allclose(again.edges, state.edges)
    with pytest.raises(TreeStateError):
        TreeState.parse(np.zeros(40, dtype=np.float32))
    bad = state.vector()
    nodes_at = len(bad) - 2 * 4 * 7 * 5  # rounds × classes × 7 node slots × 5 values, at the end
    bad[nodes_at + (0 * 4 + 1) * 7 * 5 + 2] = 0  # tree (0, 1): its root's left child is the root
    with pytest.raises(TreeStateError, match="points"):
        TreeState.parse(bad)
    with pytest.raises(ValueError, match="names 1 to 256 distinct nodes"):
        ReleaseRequest(kind="tree_histogram")


def test_neither_release_only_learner_trains_locally() -> None:
    from watch_agent.additive_learner import AdditiveLearner

    X, y = _problem(0, 50)
    for learner in (TreeLearner(X, y), AdditiveLearner(np.nan_to_num(X), y)):
        with pytest.raises(RuntimeError, match="no global model"):
            learner.vector()
        with pytest.raises(TypeError, match="is not trained locally"):
            learner.train(None, np.zeros(1))  # type: ignore[arg-type]


def test_a_feature_no_beat_has_keeps_infinite_edges_and_the_state_still_parses() -> None:
    state = TreeState.empty(TreeConfig(rounds=1, max_depth=1), FEATURES, N_BINS)
    state.edges[2] = np.inf  # `edges_from_counts` of an all-missing feature
    assert np.isinf(TreeState.parse(state.vector()).edges[2]).all()
    bad = state.vector()
    bad[-1] = np.nan  # anywhere else a non-finite value is refused
    with pytest.raises(TreeStateError, match="non-finite"):
        TreeState.parse(bad)
    state.rounds_done = 1  # a finished round must have its trees
    with pytest.raises(TreeStateError, match="no nodes"):
        TreeState.parse(state.vector())


def test_a_plan_the_protocol_cannot_keep_is_refused_before_any_release() -> None:
    from cloud_expert.coordinator.trees import check_plan

    state = TreeState.empty(TreeConfig(rounds=1, max_depth=2), FEATURES, N_BINS)
    dp = TreeConfig(rounds=1, max_depth=2, noise_multiplier=2.0, private_edges=True)
    with pytest.raises(ValueError, match="class counts need"):
        check_plan(dp, state, class_sigma=0.0, model_delta_bits=0)
    with pytest.raises(ValueError, match="class counts need"):
        check_plan(TreeConfig(rounds=1, max_depth=2, noise_multiplier=2.0), state, class_sigma=2.0,
                   model_delta_bits=0)
    with pytest.raises(ValueError, match="lossless"):
        check_plan(TreeConfig(rounds=1, max_depth=2), state, class_sigma=0.0, model_delta_bits=8)
    deep = TreeConfig(rounds=1, max_depth=9)
    with pytest.raises(ValueError, match="exceed"):
        check_plan(deep, TreeState.empty(deep, FEATURES, N_BINS), class_sigma=0.0, model_delta_bits=0)
    check_plan(dp, state, class_sigma=2.0, model_delta_bits=0)  # a plan it can keep


def test_a_watch_never_reuses_one_trainings_scores_in_another(coordinator_keys: CoordinatorKeys) -> None:
    from shared.fl.trees import Split

    X, y = _problem(1, 300)
    config = TreeConfig(rounds=2, max_depth=1)

    def state_with(value: float, training: int) -> TreeState:
        state = TreeState.empty(config, FEATURES, N_BINS)
        state.edges = np.tile(np.linspace(-2, 2, N_BINS - 2), (FEATURES, 1))
        state.ready, state.rounds_done, state.training = True, 1, training
        for k in range(4):
            tree = state.trees[0][k]
            tree.add()
            left, right = tree.split(0, Split(feature=0, threshold_bin=5, gain=1.0))
            tree.value[left], tree.value[right] = value * k, -value
        state.trees[1][0].add()
        return state

    coordinator = Coordinator(Settings(site="cloud"), InMemoryBus().transport("c"), keys=coordinator_keys,
                              initial=state_with(0.5, 1).vector(), config=RoundConfig(encrypt=False),
                              participants=["s1/w"])
    spec = coordinator.build_spec(0, Release(ReleaseRequest(kind="tree_histogram", nodes=[0]), params=1, clip=9.0,
                                             bound=10.0, dp=DpConfig()))
    reused = TreeLearner(X, y)
    reused.release(spec, state_with(0.5, 1).vector())
    second, _ = reused.release(spec, state_with(2.0, 2).vector())  # same edges, another training's trees
    fresh, _ = TreeLearner(X, y).release(spec, state_with(2.0, 2).vector())
    np.testing.assert_allclose(second, fresh)
    with pytest.raises(ValueError, match="labels up to 3 for a model of 2 classes"):
        two = TreeState.empty(TreeConfig(rounds=1, max_depth=1, n_classes=2), FEATURES, N_BINS)
        reused.release(spec, two.vector())
    with pytest.raises(ValueError, match="distinct nodes"):
        ReleaseRequest(kind="tree_histogram", nodes=[1, 1])
