"""The federated additive model: its sums are the pooled data's, it learns a problem an additive model can
learn, its privacy bill is what the accountant says, noise does not bias the class weights, and its file is
read back exactly or refused with the reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.fl import gam
from shared.fl.gam import FINE_BINS, FederatedGam, GamClient, GamConfig, accounted_epsilon, calibrate, fine_bins
from shared.fl.trees import FixedPointSum
from shared.model.serialize import ModelFileError
from tests.fl_problems import additive_problem as _problem


def _clients(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[GamClient]:
    return [GamClient(fine_bins(X), y) for X, y in parts]


def _accuracy(model: gam.GamModel, parts: list[tuple[np.ndarray, np.ndarray]]) -> float:
    X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return float(np.mean(model.predict_proba(X).argmax(axis=1) == y))


def test_the_fine_grid_is_public_and_keeps_missing_values_apart() -> None:
    bins = fine_bins(np.array([[np.nan, 0.0, 1e9, -1e9, 0.01, 0.05]]))
    assert bins[0, 0] == 0
    assert bins.min(initial=1, where=bins > 0) >= 1 and bins.max() <= FINE_BINS - 1
    assert bins[0, 4] != bins[0, 5]  # near zero the grid is fine: the correlations' distances live there


def test_summed_client_releases_equal_the_pooled_ones() -> None:
    parts = [_problem(s, 300 + 100 * s) for s in range(4)]
    clients = _clients(parts)
    pooled = GamClient(fine_bins(np.concatenate([X for X, _ in parts])), np.concatenate([y for _, y in parts]))
    assert np.array_equal(sum(c.counts(4) for c in clients), pooled.counts(4))
    config = GamConfig(epochs=3, n_bins=8)
    federated = FederatedGam(config).fit(clients)
    central = FederatedGam(config).fit([pooled])
    assert np.allclose(federated.shapes, central.shapes)  # federation costs nothing but messages


def test_it_learns_an_additive_problem_across_clients_and_through_the_fixed_point() -> None:
    parts = [_problem(s, 800) for s in range(5)]
    held_out = [_problem(99, 2000)]
    model = FederatedGam(GamConfig(epochs=10, n_bins=16), aggregate=FixedPointSum(4000.0)).fit(_clients(parts))
    assert _accuracy(model, held_out) > 0.9  # (balanced class weights trade a little accuracy for recall)
    untrained = FederatedGam(GamConfig(epochs=0, n_bins=16)).fit(_clients(parts))
    assert _accuracy(untrained, held_out) < _accuracy(model, held_out) - 0.2


def test_with_dp_at_eps_8_it_still_learns_and_the_bill_is_what_the_accountant_says() -> None:
    parts = [_problem(s, 3000) for s in range(6)]
    config = calibrate(GamConfig(epochs=5, n_bins=8), features=4, epsilon=8.0)
    assert config.noise_multiplier > 1.0 and config.count_noise_multiplier > 0
    assert accounted_epsilon(config, 4) == pytest.approx(8.0, rel=0.01)
    assert accounted_epsilon(replace(config, epochs=10), 4) > 8.0  # more releases, more ε
    model = FederatedGam(config).fit(_clients(parts))
    assert _accuracy(model, [_problem(99, 3000)]) > 0.85


def test_noised_counts_do_not_inflate_the_small_classes() -> None:
    """Summing noised cells unclipped keeps the class totals unbiased (clipping each at 0 first added ≈ 0.4 σ
    per empty cell: hundreds of phantom beats for a rare class)."""
    parts = [_problem(s, 2000) for s in range(4)]
    config = replace(GamConfig(epochs=0, n_bins=8), count_noise_multiplier=3.0)
    exact = FederatedGam(replace(config, count_noise_multiplier=0.0)).fit(_clients(parts)).class_weight
    noised = FederatedGam(config).fit(_clients(parts)).class_weight
    assert np.allclose(noised, exact, rtol=0.1)


def test_the_model_file_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    from shared.model.tree_features import n_features

    rng = np.random.default_rng(0)
    columns = 6
    model = gam.GamModel(np.sort(rng.integers(0, 8, size=(columns, FINE_BINS)), axis=1),
                         rng.normal(size=(columns, 8, 4)), np.ones(4))
    path = tmp_path / "m.npz"
    gam.save(path, model, columns, {"epsilon": 7.9})
    loaded, got_columns, meta = gam.load(path)
    assert got_columns == columns and meta == {"epsilon": 7.9}
    assert np.array_equal(loaded.shapes, model.shapes) and np.array_equal(loaded.coarse, model.coarse)
    with pytest.raises(ModelFileError, match="no such file"):
        gam.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a readable"):
        gam.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", kind="something else")
    with pytest.raises(ModelFileError, match="not an additive"):
        gam.load(tmp_path / "other.npz")
    gam.save(tmp_path / "wide.npz", gam.GamModel(np.zeros((n_features() + 1, FINE_BINS), dtype=np.int64),
                                                 np.zeros((n_features() + 1, 8, 4)), np.ones(4)), n_features() + 1)
    with pytest.raises(ModelFileError, match="inconsistent"):
        gam.load(tmp_path / "wide.npz")


def test_a_pairwise_term_learns_what_no_sum_of_single_features_can() -> None:
    """Class 1 when features 0 and 1 share a sign (XOR-like): an additive model sits near chance, one pair term
    reads it; the pair's shapes survive the file round trip and cost one more release per epoch."""

    def xor(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, 3))
        return X, ((X[:, 0] > 0) == (X[:, 1] > 0)).astype(np.int64)

    parts, held_out = [xor(s, 1000) for s in range(4)], [xor(99, 3000)]
    config = GamConfig(epochs=8, n_bins=9, n_classes=2)  # 8 quantile bins: zero falls on an edge
    additive = FederatedGam(config).fit(_clients(parts))
    booster = FederatedGam(replace(config, pairs=((0, 1),)))
    paired = booster.fit(_clients(parts))
    assert _accuracy(additive, held_out) < 0.6 < 0.9 < _accuracy(paired, held_out)
    assert booster.releases == 2 + 8 * 4  # two count tables, then 3 features + 1 pair per epoch
    assert accounted_epsilon(replace(config, pairs=((0, 1),), noise_multiplier=5.0, count_noise_multiplier=1.0),
                             3) > accounted_epsilon(replace(config, noise_multiplier=5.0,
                                                            count_noise_multiplier=1.0), 3)


def test_a_paired_model_file_round_trips(tmp_path: Path) -> None:
    parts = [_problem(s, 500) for s in range(3)]
    model = FederatedGam(GamConfig(epochs=2, n_bins=8, pairs=((0, 1), (2, 3)))).fit(_clients(parts))
    gam.save(tmp_path / "p.npz", model, 4)
    loaded, _, _ = gam.load(tmp_path / "p.npz")
    X = np.concatenate([X for X, _ in parts])
    assert np.allclose(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.pair_shapes.shape == (2, 64, 4)


def test_the_noise_is_secret_unless_a_test_seeds_it() -> None:
    """The public seed fixes the term order only: two fits with the same seed draw different noise (OS
    entropy), so nobody can regenerate and subtract it; `noise_seed` makes a test reproducible."""
    parts = [_problem(s, 400) for s in range(3)]
    config = GamConfig(epochs=2, n_bins=8, noise_multiplier=3.0, count_noise_multiplier=1.0, seed=7)
    a, b = (FederatedGam(config).fit(_clients(parts)) for _ in range(2))
    assert not np.allclose(a.shapes, b.shapes)
    seeded = replace(config, noise_seed=1)
    c, d = (FederatedGam(seeded).fit(_clients(parts)) for _ in range(2))
    assert np.array_equal(c.shapes, d.shapes)


def test_bad_labels_and_oversized_values_are_refused_not_folded_in() -> None:
    X, y = _problem(0, 50)
    y[3] = 4
    with pytest.raises(ValueError, match="labels must be 0"):
        GamClient(fine_bins(X), y).counts(4)
    with pytest.raises(ValueError, match="exceeds the packing bound"):
        FixedPointSum(10.0)([np.array([1.0, 11.0]), np.zeros(2)])


def test_other_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    np.save(tmp_path / "bare.npy", np.zeros(3))
    (tmp_path / "bare.npz").write_bytes((tmp_path / "bare.npy").read_bytes())
    with pytest.raises(ModelFileError, match="bare array"):
        gam.load(tmp_path / "bare.npz")
    model = gam.GamModel(np.zeros((3, FINE_BINS), dtype=np.int64), np.zeros((3, 8, 2)), np.ones(2))
    gam.save(tmp_path / "two.npz", model, 3)
    with pytest.raises(ModelFileError, match="inconsistent"):  # two classes: not a beat model's four
        gam.load(tmp_path / "two.npz")


def test_a_class_bias_moves_every_beats_logits_alike_and_survives_the_file(tmp_path: Path) -> None:
    parts = [_problem(s, 600) for s in range(3)]
    model = FederatedGam(GamConfig(epochs=5, n_bins=8)).fit(_clients(parts))
    X = _problem(7, 500)[0]  # missing values included: their bin carries the bias too
    bias = np.array([0.0, 0.0, -1.5, 0.25])
    biased = gam.with_class_bias(model, bias)
    assert np.allclose(biased.raw(X) - model.raw(X), bias[None, :])
    assert np.array_equal(model.shapes, FederatedGam(GamConfig(epochs=5, n_bins=8)).fit(_clients(parts)).shapes)
    assert (biased.predict_proba(X).argmax(axis=1) == 2).sum() < (model.predict_proba(X).argmax(axis=1) == 2).sum()
    gam.save(tmp_path / "b.npz", biased, X.shape[1])
    assert np.allclose(gam.load(tmp_path / "b.npz")[0].raw(X), biased.raw(X))
