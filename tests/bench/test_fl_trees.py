"""The trees bench's pieces: each leave-one-record-out cell maps to the federated trainer's own growth policy,
the packing bound covers every client, and 32-bit fixed point still sums through real Paillier exactly."""

from __future__ import annotations

import numpy as np

from bench import fl_trees as bench
from bench._trees_loro import CELLS


def test_each_cell_maps_to_the_federated_growth_it_stands_for() -> None:
    level, level_bins, _ = bench._cell_config(CELLS["level-wise"], 200)
    assert level.max_leaves is None and level.min_samples_leaf == 0 and level.lam == 1.0 and level.max_depth == 6
    assert level_bins == 64  # scikit-learn's 63 bins + the missing-value bin
    leaf, leaf_bins, points = bench._cell_config(CELLS["leaf-wise"], 300)
    assert (leaf.max_leaves, leaf.min_samples_leaf, leaf.lam, leaf.rounds) == (31, 20, 0.0, 300)
    assert leaf_bins == 256 and points == 257


def test_the_client_bound_covers_a_bin_holding_every_beat_of_the_largest_client() -> None:
    y = [np.array([0] * 900 + [2] * 100), np.array([0] * 50 + [3] * 2)]
    weight_f = 1052 / (4 * 2)  # F, the rarest class present (no S beat anywhere: S weighs nothing)
    bound = bench.client_bound(y)
    assert bound >= 1000 * weight_f  # one bin with all 1,000 beats at the largest weight
    assert bound < 1000 * weight_f + 1000


def test_32_bit_fixed_point_sums_through_paillier_exactly() -> None:
    from bench._common import PaillierChecked

    verified = PaillierChecked(limit=1, bound=5000.0, value_bits=bench.VALUE_BITS)
    rng = np.random.default_rng(1)
    vectors = [rng.normal(0, 100, 300) for _ in range(3)]
    out = verified(vectors)
    assert verified.verified == 1
    assert np.max(np.abs(out - np.sum(vectors, axis=0))) < 3 * 5000.0 / 2 ** 31 * 3


def test_the_leave_one_record_out_choice_waits_for_every_cell() -> None:
    from bench._trees_loro import choose

    scores = {f"{name}, {r} rounds": {"veb_f1": 0.5} for name in CELLS for r in (100, 200)}
    scores["leaf-wise, 200 rounds"]["veb_f1"] = 0.9
    assert choose(scores, [100, 200]) == "leaf-wise, 200 rounds"
    del scores["additive, 100 rounds"]
    assert choose(scores, [100, 200]) is None


def test_the_choice_ignores_cells_left_from_other_grids() -> None:
    from bench._trees_loro import choose

    scores = {f"{name}, {r} rounds": {"veb_f1": 0.5} for name in CELLS for r in (100, 200)}
    scores["level-wise, 400 rounds"] = {"veb_f1": 0.99}  # an older run's longer grid, still in the file
    scores["additive, 200 rounds"]["veb_f1"] = 0.7
    assert choose(scores, [100, 200]) == "additive, 200 rounds"


def test_pooled_leave_one_out_fits_without_the_held_out_client_and_scores_the_pooled_predictions() -> None:
    import numpy as np

    from bench.fl_trees import pooled_loro_veb_f1

    X = [np.full((3, 1), float(i)) for i in range(3)]
    y = [np.array([2, 2, 0]), np.array([2, 0, 0]), np.array([0, 0, 0])]
    seen: list[list[float]] = []

    class Always:
        def __init__(self, cls: int) -> None:
            self.cls = cls

        def predict_proba(self, rows: np.ndarray) -> np.ndarray:
            return np.eye(4)[np.full(len(rows), self.cls)]

    def fit(features: list[np.ndarray], labels: list[np.ndarray]) -> Always:
        seen.append(sorted(float(f[0, 0]) for f in features))
        return Always(2)

    # every beat called V: 3 of 9 are V → Se 1, +P 1/3, F1 0.5
    assert pooled_loro_veb_f1(X, y, fit) == 0.5
    assert seen == [[1.0, 2.0], [0.0, 2.0], [0.0, 1.0]]
