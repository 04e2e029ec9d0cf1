"""The federated random-structure forest: its structure is public and never cuts a dead branch, one beat moves
one leaf count per tree (the sensitivity the noise is sized for), its sums are the pooled data's, it learns an
interaction no additive model can, its privacy bill is what the accountant says, and its file is read back
exactly or refused with the reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.fl import forest
from shared.fl.forest import (
    FederatedForest,
    ForestConfig,
    accounted_epsilon,
    calibrate,
    leaf_counts,
    leaf_of,
    random_tree,
    structure,
)
from shared.fl.gam import fine_bins
from shared.fl.trees import FixedPointSum, NoisedSums
from shared.model.serialize import ModelFileError
from tests.fl_problems import xor_problem as _xor


def _clients(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(fine_bins(X), y) for X, y in parts]


def _accuracy(model: forest.ForestModel, parts: list[tuple[np.ndarray, np.ndarray]]) -> float:
    X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return float(np.mean(model.predict_proba(X).argmax(axis=1) == y))


def test_the_structure_is_public_and_every_cut_splits_what_its_path_left() -> None:
    config = ForestConfig(trees=5, depth=6, n_bins=8, seed=3)
    feature, cut = structure(config, 4)
    again = structure(config, 4)
    assert np.array_equal(feature, again[0]) and np.array_equal(cut, again[1])  # the seed alone decides
    assert not np.array_equal(cut, structure(replace(config, seed=4), 4)[1])
    # walk every root-to-leaf path: each real cut lies strictly inside the range the path above it left
    for t in range(config.trees):
        stack = [(0, np.zeros(4, np.int64), np.full(4, config.n_bins, np.int64))]
        while stack:
            node, low, high = stack.pop()
            if node >= len(feature[t]):
                continue
            f, c = feature[t, node], cut[t, node]
            if c < config.n_bins:
                assert low[f] < c < high[f]
                left_high, right_low = high.copy(), low.copy()
                left_high[f], right_low[f] = c, c
                stack += [(2 * node + 1, low, left_high), (2 * node + 2, right_low, high)]
            else:  # nothing left to cut on this path: everyone goes left
                assert np.all(high - low <= 1)
                stack += [(2 * node + 1, low, high)]


def test_one_beat_moves_one_leaf_count_per_tree() -> None:
    config = ForestConfig(trees=7, depth=4, n_bins=6)
    feature, cut = structure(config, 3)
    rng = np.random.default_rng(0)
    bins = rng.integers(0, config.n_bins, size=(50, 3))
    y = rng.integers(0, 4, size=50)
    with_it = leaf_counts(bins, y, feature, cut, config)
    without = leaf_counts(bins[1:], y[1:], feature, cut, config)
    difference = with_it - without
    assert np.all(difference.reshape(config.trees, -1).sum(axis=1) == 1)  # exactly one cell per tree
    assert np.linalg.norm(difference) == pytest.approx(np.sqrt(config.trees))  # the L2 sensitivity noised for
    assert with_it.sum() == 50 * config.trees
    leaf = leaf_of(bins[:1], feature[0], cut[0], config.depth)[0]
    assert difference[0, leaf, y[0]] == 1


def test_a_tree_with_nothing_left_to_cut_sends_every_beat_left() -> None:
    feature, cut = random_tree(np.random.default_rng(0), 1, 2, 3)  # one feature, two bins: one cut in all
    assert np.sum(cut < 2) == 1 and cut[0] == 1
    assert np.array_equal(leaf_of(np.array([[0], [1]]), feature, cut, 3), [0, 4])


def test_summed_client_releases_equal_the_pooled_ones() -> None:
    parts = [_xor(s, 300 + 100 * s) for s in range(4)]
    config = ForestConfig(trees=10, depth=5, n_bins=8)
    federated = FederatedForest(config).fit(_clients(parts))
    pooled = FederatedForest(config).fit(_clients([(np.concatenate([X for X, _ in parts]),
                                                    np.concatenate([y for _, y in parts]))]))
    assert np.array_equal(federated.coarse, pooled.coarse)
    assert np.allclose(federated.leaf_proba, pooled.leaf_proba)  # federation costs nothing but messages


def test_it_learns_an_interaction_across_clients_and_through_the_fixed_point() -> None:
    parts = [_xor(s, 1500) for s in range(5)]
    held_out = [_xor(99, 3000)]
    config = ForestConfig(trees=60, depth=6, n_bins=12)
    plain = FederatedForest(config).fit(_clients(parts))
    fixed = FederatedForest(config, aggregate=FixedPointSum(2000.0)).fit(_clients(parts))
    assert _accuracy(plain, held_out) > 0.85  # an XOR: an additive model stays near the majority share
    assert np.allclose(plain.leaf_proba, fixed.leaf_proba, atol=1e-4)
    majority = float(np.mean(np.concatenate([y for _, y in held_out]) == 2))
    assert _accuracy(plain, held_out) > majority + 0.3


def test_dp_costs_what_the_accountant_says_and_still_learns() -> None:
    config = calibrate(ForestConfig(trees=60, depth=6, n_bins=12, noise_seed=1), 8.0)
    assert accounted_epsilon(config) == pytest.approx(8.0, abs=0.05)
    assert config.count_noise_multiplier == pytest.approx(0.3 * config.noise_multiplier)
    assert accounted_epsilon(replace(config, noise_multiplier=config.noise_multiplier * 2)) < 8.0
    parts = [_xor(s, 1500) for s in range(5)]
    trainer = FederatedForest(config)
    model = trainer.fit(_clients(parts))
    assert trainer.releases == 2  # the count table, then every tree's leaves at once
    assert _accuracy(model, [_xor(99, 3000)]) > 0.8


def test_each_release_is_noised_for_its_own_sensitivity() -> None:
    """The count table moves by √features per beat, the leaves by √trees: swapping them would pass the bill."""
    config = calibrate(ForestConfig(trees=9, depth=3, n_bins=6), 8.0)
    trainer = FederatedForest(config)
    sigmas: list[float] = []

    class Recorded(NoisedSums):
        def release(self, shares: list[np.ndarray], sigma: float) -> np.ndarray:
            sigmas.append(sigma)
            return super().release(shares, sigma)

    trainer._sums = Recorded(trainer._sums.aggregate, trainer._sums.rng)
    trainer.fit(_clients([_xor(0, 300), _xor(1, 300)]))
    assert sigmas == pytest.approx([config.count_noise_multiplier * np.sqrt(4), config.noise_multiplier * 3.0])


def test_two_releases_cost_what_one_gaussian_of_their_combined_multiplier_costs() -> None:
    """Gaussian RDP adds: multipliers a and b compose to one of (a⁻² + b⁻²)^−½ — a check on the bill that does not
    go through `calibrate`."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    config = ForestConfig(noise_multiplier=3.0, count_noise_multiplier=1.5)
    single = RdpAccountant()
    single.compose(dp_accounting.GaussianDpEvent((3.0 ** -2 + 1.5 ** -2) ** -0.5))
    assert accounted_epsilon(config) == pytest.approx(single.get_epsilon(1e-5), rel=1e-6)
    with pytest.raises(ValueError, match="cannot be reached"):
        calibrate(ForestConfig(), 1e-6)


def test_the_noise_is_secret_by_default() -> None:
    parts = [_xor(s, 400) for s in range(3)]
    config = calibrate(ForestConfig(trees=5, depth=4, n_bins=8), 8.0)
    first, second = (FederatedForest(config).fit(_clients(parts)) for _ in range(2))
    assert not np.allclose(first.leaf_proba, second.leaf_proba)  # OS entropy: two runs, two draws


def test_a_saved_model_reads_back_exactly_and_bad_files_are_refused(tmp_path: Path) -> None:
    parts = [_xor(s, 400) for s in range(3)]
    model = forest.with_class_bias(FederatedForest(ForestConfig(trees=4, depth=3, n_bins=6)).fit(_clients(parts)),
                                   np.array([0.0, 0.0, -0.5, 0.0]))
    path = tmp_path / "forest.npz"
    forest.save(path, model, [0, 1, 2, 3], {"epsilon": 8.0})
    assert forest.is_model_file(path)
    loaded, columns, meta = forest.load(path)
    assert list(columns) == [0, 1, 2, 3] and meta == {"epsilon": 8.0}
    X = np.concatenate([X for X, _ in parts])
    assert np.allclose(loaded.raw(X), model.raw(X))
    bad = tmp_path / "bad.npz"
    np.savez(bad, kind=forest.FILE_KIND, version=forest.FILE_VERSION, coarse=model.coarse, feature=model.feature,
             cut=model.cut + 100, leaf_proba=model.leaf_proba, class_weight=model.class_weight, bias=model.bias,
             columns=np.arange(4), n_bins=model.n_bins, meta="{}")
    with pytest.raises(ModelFileError, match="inconsistent forest"):
        forest.load(bad)
    negative = tmp_path / "negative.npz"  # a leaf that is no distribution would read every beat as class 0
    np.savez(negative, kind=forest.FILE_KIND, version=forest.FILE_VERSION, coarse=model.coarse,
             feature=model.feature, cut=model.cut, leaf_proba=-model.leaf_proba, class_weight=model.class_weight,
             bias=model.bias, columns=np.arange(4), n_bins=model.n_bins, meta="{}")
    with pytest.raises(ModelFileError, match="inconsistent forest"):
        forest.load(negative)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert not forest.is_model_file(tmp_path / "junk.npz")
    with pytest.raises(ModelFileError):
        forest.load(tmp_path / "junk.npz")
