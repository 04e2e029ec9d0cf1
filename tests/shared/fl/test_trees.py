"""Federated histogram boosting: the sums of the clients' histograms grow the same trees as the pooled data
would, the sketch's bins track the pooled quantiles, and the boosted model learns a separable problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.fl.trees import (
    N_BINS,
    Client,
    FederatedBoosting,
    TreeConfig,
    best_splits,
    bin_features,
    client_histograms,
    client_sketch,
    merge_sketches,
)


def _problem(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = ((X[:, 0] > 0.3).astype(int) + (X[:, 1] > 0.8).astype(int) * 2).clip(0, 3)
    X[rng.random(n) < 0.05, 2] = np.nan  # missing values take bin 0
    return X, y


def test_the_merged_sketch_tracks_the_pooled_quantiles() -> None:
    parts = [_problem(s, 500 + 300 * s)[0] for s in range(5)]
    edges = merge_sketches([client_sketch(X) for X in parts])
    pooled = np.concatenate(parts)
    exact = np.nanquantile(pooled, np.linspace(0, 1, N_BINS)[1:-1], axis=0).T
    assert edges.shape == (5, N_BINS - 2)
    assert np.max(np.abs(edges - exact)) < 0.12  # within a fraction of a standard deviation everywhere


def test_summed_client_histograms_equal_the_pooled_histogram_and_pick_the_same_split() -> None:
    parts = [_problem(s, 400) for s in range(4)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    rng = np.random.default_rng(9)
    grads = [(rng.normal(size=len(y)), rng.random(len(y)) + 0.1) for _, y in parts]
    node = [np.zeros(len(y), dtype=np.int64) for _, y in parts]
    summed = sum(client_histograms(bin_features(X, edges), n, g, h, 1)
                 for (X, _), n, (g, h) in zip(parts, node, grads, strict=True))
    pooled = client_histograms(bin_features(np.concatenate([X for X, _ in parts]), edges),
                               np.zeros(1600, dtype=np.int64), np.concatenate([g for g, _ in grads]),
                               np.concatenate([h for _, h in grads]), 1)
    assert np.allclose(summed, pooled)
    [federated], [central] = best_splits(np.asarray(summed), 1.0, 1.0), best_splits(pooled, 1.0, 1.0)
    assert federated is not None and central is not None
    assert (federated.feature, federated.threshold_bin) == (central.feature, central.threshold_bin)


def test_boosting_learns_a_separable_problem_across_clients() -> None:
    parts = [_problem(s, 600) for s in range(6)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    clients = [Client(bin_features(X, edges), y, np.ones(len(y))) for X, y in parts]
    booster = FederatedBoosting(TreeConfig(rounds=30, max_depth=3, learning_rate=0.3))
    model = booster.fit(clients, edges)
    X_test, y_test = _problem(99, 2000)
    accuracy = float((model.predict_proba(X_test).argmax(axis=1) == y_test).mean())
    assert accuracy > 0.95
    assert 0 < booster.releases <= 30 * 4 * 4  # ≤ rounds × classes × levels: what the coordinator saw


def test_sample_level_dp_is_accounted_over_every_release_and_the_bins_leak_nothing() -> None:
    from shared.fl.accounting import GaussianRounds, privacy_spent
    from shared.fl.trees import dp_epsilon, noise_multiplier_for, public_edges, releases_of

    config = TreeConfig(rounds=5, max_depth=2)
    assert releases_of(config) == 5 * 4 * 3 + 1  # every level of every class's tree, and the class counts
    z = noise_multiplier_for(8.0, config)
    assert 7.9 < dp_epsilon(config, z) <= 8.0  # the smallest noise that stays within the budget
    # the same as composing every release on its own (a round's releases are one Gaussian of z / √L)
    plain = privacy_spent(GaussianRounds(z), releases_of(config), target_delta=1e-5)[0]
    assert abs(plain - dp_epsilon(config, z)) < 0.05
    assert noise_multiplier_for(1.0, config) > z
    sampled = TreeConfig(rounds=5, max_depth=2, sample_rate=0.2)
    assert noise_multiplier_for(8.0, sampled) < z  # amplification by sampling
    edges = public_edges(3, 16)
    assert edges.shape == (3, 14) and np.all(np.diff(edges, axis=1) > 0) and np.allclose(edges[0], edges[2])


def test_the_private_sketch_is_one_more_accounted_release_of_sensitivity_root_features() -> None:
    from shared.fl.accounting import GaussianRounds, privacy_spent
    from shared.fl.trees import dp_epsilon, grid_counts, noise_multiplier_for, releases_of, sketch_grid

    config = TreeConfig(rounds=5, max_depth=2, private_edges=True)
    assert releases_of(config) == 5 * 4 * 3 + 2  # the class counts and the sketch
    z = noise_multiplier_for(8.0, config)
    plain = privacy_spent(GaussianRounds(z), releases_of(config), target_delta=1e-5)[0]
    assert abs(plain - dp_epsilon(config, z)) < 0.05 and 7.9 < dp_epsilon(config, z) <= 8.0
    assert z > noise_multiplier_for(8.0, TreeConfig(rounds=5, max_depth=2))  # the sketch is paid for
    X, _ = _problem(0, 500)
    grid = sketch_grid()
    counts = grid_counts(X, grid)
    assert counts.shape == (5, len(grid) + 1)
    assert np.array_equal(counts.sum(axis=1), np.isfinite(X).sum(axis=0))  # missing values counted nowhere
    one_more = grid_counts(np.vstack([X, X[:1]]), grid) - counts  # one beat: one count in each feature
    assert np.array_equal(np.abs(one_more).sum(axis=1), [1, 1, 1, 1, 1]) and np.sqrt((one_more ** 2).sum()) == \
        np.sqrt(5)


def test_private_edges_track_the_pooled_quantiles_and_the_noise_leaves_them_unbiased() -> None:
    from shared.fl.trees import edges_from_counts, grid_counts, sketch_grid

    parts = [_problem(s, 4000)[0] for s in range(6)]
    pooled = np.concatenate(parts)
    targets = np.linspace(0, 1, 16)[1:-1]

    def worst_rank_error(edges: np.ndarray) -> float:
        ranks = np.array([[np.mean(pooled[:, f][np.isfinite(pooled[:, f])] < e) for e in edges[f]]
                          for f in range(pooled.shape[1])])
        return float(np.max(np.abs(ranks - targets)))

    grid = sketch_grid(512)
    clear = FederatedBoosting(TreeConfig()).private_edges(parts, 16, grid=grid)
    assert clear.shape == (5, 14) and worst_rank_error(clear) < 0.01  # the grid's resolution only
    noised = [worst_rank_error(FederatedBoosting(TreeConfig(noise_multiplier=5.0, noise_seed=seed))
                               .private_edges(parts, 16, grid=grid)) for seed in range(4)]
    assert np.mean(noised) < 0.025
    # clipping each noisy cell at 0 instead adds mass wherever the data is thin: the edges drift
    rng = np.random.default_rng(0)
    counts = np.sum([grid_counts(X, grid) for X in parts], axis=0)
    clipped = [worst_rank_error(edges_from_counts(np.maximum(counts + rng.normal(0, 5 * np.sqrt(5), counts.shape),
                                                             0), grid, 16)) for _ in range(4)]
    assert np.mean(clipped) > 1.5 * np.mean(noised)


def test_noised_histograms_still_learn_when_the_signal_is_strong() -> None:
    from shared.fl.trees import public_edges

    parts = [_problem(s, 3000) for s in range(6)]
    edges = public_edges(5, 32)
    clients = [Client(bin_features(X, edges), y, np.ones(len(y))) for X, y in parts]
    noisy = FederatedBoosting(TreeConfig(rounds=10, max_depth=3, learning_rate=0.4, noise_multiplier=2.0,
                                         clip=1.0, min_hessian=5.0, seed=1, noise_seed=1))
    model = noisy.fit(clients, edges)
    X_test, y_test = _problem(99, 2000)
    assert float((model.predict_proba(X_test).argmax(axis=1) == y_test).mean()) > 0.9


def test_the_encrypted_sum_gives_the_same_trees_and_refuses_fewer_than_k_clients() -> None:
    """Histograms through packed Paillier (the edge adds ciphertexts without a key): the sum decrypts to the
    plain sum within the quantisation step, the grown model predicts the same, and one client is not enough."""
    import pytest

    from shared.crypto.paillier import generate_keypair
    from shared.fl.trees import PackedSum
    from shared.fl_codec import CodecError

    keys = generate_keypair(512, insecure_test_only=True)  # small and fast: the arithmetic is what is tested
    packed = PackedSum(keys.public_key, keys.private_key, clip=1000.0, value_bits=24)
    rng = np.random.default_rng(3)
    vectors = [rng.normal(0, 50, 300) for _ in range(3)]
    assert np.allclose(packed(vectors), np.sum(vectors, axis=0), atol=3 * 2 * 1000.0 / 2 ** 24)
    assert packed.bytes_sent > 0
    with pytest.raises(CodecError):
        packed(vectors[:1])
    parts = [_problem(s, 300) for s in range(3)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])

    def model(aggregate: object) -> np.ndarray:
        clients = [Client(bin_features(X, edges), y, np.ones(len(y))) for X, y in parts]
        kwargs = {} if aggregate is None else {"aggregate": aggregate}
        fitted = FederatedBoosting(TreeConfig(rounds=3, max_depth=2), **kwargs).fit(clients, edges)  # type: ignore[arg-type]
        return fitted.predict_proba(_problem(7, 500)[0])

    assert np.allclose(model(PackedSum(keys.public_key, keys.private_key, clip=1000.0)), model(None), atol=1e-4)


def _clients(parts: list[tuple[np.ndarray, np.ndarray]], edges: np.ndarray) -> list[Client]:
    return [Client(bin_features(X, edges), y, np.ones(len(y))) for X, y in parts]


def test_best_first_growth_without_a_leaf_cap_grows_the_level_wise_trees() -> None:
    """Splits are chosen per node, so growing best-first to the same depth, with leaves to spare, must give the
    very trees level-wise growth gives — a check of the subtraction trick and the routing."""
    parts = [_problem(s, 500) for s in range(3)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    X_test, _ = _problem(7, 800)
    level = FederatedBoosting(TreeConfig(rounds=4, max_depth=3)).fit(_clients(parts, edges), edges)
    best_first = FederatedBoosting(TreeConfig(rounds=4, max_depth=3, max_leaves=64)).fit(_clients(parts, edges),
                                                                                         edges)
    assert np.allclose(level.raw(X_test), best_first.raw(X_test))


def test_best_first_growth_respects_the_leaf_cap_and_the_beats_a_leaf_needs() -> None:
    parts = [_problem(s, 700) for s in range(4)]
    edges = merge_sketches([client_sketch(X, points=257) for X, _ in parts], n_bins=256)
    config = TreeConfig(rounds=6, max_depth=6, max_leaves=5, min_samples_leaf=40, lam=0.0, min_hessian=1e-3)
    booster = FederatedBoosting(config)
    model = booster.fit(_clients(parts, edges), edges)
    pooled = bin_features(np.concatenate([X for X, _ in parts]), edges)
    for round_trees in model.trees:
        for tree in round_trees:
            leaves = [i for i, f in enumerate(tree.feature) if f < 0]
            assert 2 <= len(leaves) <= 5
            _values, sizes = np.unique(tree.predict(pooled), return_counts=True)
            assert sizes.min() >= 40  # each leaf (a distinct value, almost surely) holds ≥ 40 training beats
    # one release for the root and one per split, each of the smaller child: (1 + splits) per tree
    assert booster.releases <= 6 * 4 * 5
    X_test, y_test = _problem(99, 2000)
    assert float((model.predict_proba(X_test).argmax(axis=1) == y_test).mean()) > 0.9


def test_federated_best_first_trees_equal_the_pooled_ones() -> None:
    parts = [_problem(s, 400) for s in range(5)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    config = TreeConfig(rounds=5, max_depth=4, max_leaves=7, min_samples_leaf=10)
    federated = FederatedBoosting(config).fit(_clients(parts, edges), edges)
    pooled_part = (np.concatenate([X for X, _ in parts]), np.concatenate([y for _, y in parts]))
    central = FederatedBoosting(config).fit(_clients([pooled_part], edges), edges)
    X_test, _ = _problem(3, 500)
    assert np.allclose(federated.raw(X_test), central.raw(X_test))


def test_dp_refuses_the_growth_it_does_not_account_for() -> None:
    import pytest

    with pytest.raises(ValueError, match="level-wise"):
        TreeConfig(noise_multiplier=1.0, max_leaves=31)
    with pytest.raises(ValueError, match="level-wise"):
        TreeConfig(noise_multiplier=1.0, min_samples_leaf=20)
    with pytest.raises(ValueError, match="at least 2"):
        TreeConfig(max_leaves=1)


def test_a_saved_model_predicts_as_the_trained_one_and_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    import pytest

    from shared.fl.trees import is_model_file, load_model, save_model
    from shared.model.serialize import ModelFileError

    parts = [_problem(s, 400) for s in range(3)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    model = FederatedBoosting(TreeConfig(rounds=3, max_depth=3, max_leaves=5)).fit(_clients(parts, edges), edges)
    save_model(tmp_path / "m.npz", model, {"cell": "leaf-wise"})
    loaded, meta = load_model(tmp_path / "m.npz")
    X_test, _ = _problem(5, 300)
    assert np.array_equal(loaded.raw(X_test), model.raw(X_test)) and meta == {"cell": "leaf-wise"}
    assert is_model_file(tmp_path / "m.npz") and not is_model_file(tmp_path / "nothing.npz")
    with np.load(tmp_path / "m.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["left"] = arrays["left"] + 1000  # a child outside its tree
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match="outside itself"):
        load_model(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(ModelFileError, match="not a readable boosted-trees beat model"):
        load_model(tmp_path / "junk.npz")


def test_walking_every_tree_at_once_sums_what_each_tree_says() -> None:
    parts = [_problem(s, 300) for s in range(3)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    model = FederatedBoosting(TreeConfig(rounds=4, max_depth=4, max_leaves=6)).fit(_clients(parts, edges), edges)
    X_test, _ = _problem(8, 200)
    bins = bin_features(X_test, edges)
    one_by_one = np.zeros((len(X_test), 4))
    for round_trees in model.trees:
        for k, tree in enumerate(round_trees):
            one_by_one[:, k] += model.learning_rate * tree.predict(bins)
    assert np.allclose(model.raw(X_test), one_by_one)
    assert model.raw(X_test[:0]).shape == (0, 4)
    model.trees.append(model.trees[0])  # a round added after a prediction: the flattened walk is rebuilt
    assert np.allclose(model.raw(X_test), one_by_one + model.learning_rate * np.stack(
        [tree.predict(bins) for tree in model.trees[0]], axis=1))


def test_a_crafted_model_file_is_refused_before_any_walk(tmp_path: Path) -> None:
    """Each way a file can lie about its trees gives `ModelFileError` with a reason — never an IndexError, a
    walk that does not end, or a model the product's readers cannot feed."""
    import pytest

    from shared.fl.trees import is_model_file, load_model, save_model
    from shared.model.serialize import ModelFileError

    parts = [_problem(s, 300) for s in range(2)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    model = FederatedBoosting(TreeConfig(rounds=2, max_depth=2)).fit(_clients(parts, edges), edges)
    save_model(tmp_path / "m.npz", model)
    with np.load(tmp_path / "m.npz") as data:
        good = {k: data[k] for k in data.files}

    def refused(match: str, **changes: object) -> None:
        np.savez(tmp_path / "bad.npz", **{**good, **changes})
        with pytest.raises(ModelFileError, match=match):
            load_model(tmp_path / "bad.npz")

    refused("do not make", left=good["left"][:-1])  # a column shorter than the trees
    loop = good["left"].copy()
    loop[0] = 0  # the root's left child is the root itself
    refused("back at a node before it", left=loop)
    refused("inconsistent trees model", edges=np.float64(1.0))
    refused("meta is not an object", meta="[1, 2]")
    refused("no version number", version="one")
    refused("do not make", rounds=-1, n_classes=-4)
    with pytest.raises(ModelFileError, match="4 beat classes"):
        load_model(tmp_path / "m.npz", beat_model=True)  # 5 features, not the beat features
    np.save(tmp_path / "bare.npy", np.zeros(3))
    (tmp_path / "bare.npy").rename(tmp_path / "bare.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    for name in ("bare.npz", "empty.npz"):
        assert not is_model_file(tmp_path / name)
        with pytest.raises(ModelFileError):
            load_model(tmp_path / name)


def test_many_rows_in_chunks_and_an_empty_forest() -> None:
    from shared.fl.trees import BoostedModel

    parts = [_problem(s, 300) for s in range(2)]
    edges = merge_sketches([client_sketch(X) for X, _ in parts])
    model = FederatedBoosting(TreeConfig(rounds=2, max_depth=2)).fit(_clients(parts, edges), edges)
    X_many, _ = _problem(4, 9000)  # more than one chunk
    assert np.allclose(model.raw(X_many)[-100:], model.raw(X_many[-100:]))
    assert np.array_equal(BoostedModel(edges, [], 0.1, 4).raw(X_many[:3]), np.zeros((3, 4)))


def test_beats_a_leaf_needs_are_not_counted_under_sampling() -> None:
    import pytest

    with pytest.raises(ValueError, match="sample_rate 1"):
        TreeConfig(min_samples_leaf=20, sample_rate=0.5)
