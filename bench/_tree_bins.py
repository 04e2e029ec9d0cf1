"""Two DS1-only studies of the federated trees' bins (issue 15; DS2 is never read here).

* **fidelity** — how far the no-DP trees' edges, merged from the clients' quantile sketches
  (`merge_sketches`), sit from the pooled beats' exact quantiles, in bins, for sketches of 257 (the trainer's)
  to 2,049 points: is the sketch what separates the federated trees from scikit-learn's?
* **dp-cells** — the DP trees' bins: the fixed log grid (`public_edges`), the private sketch
  (`FederatedBoosting.private_edges`) over 512, 1,024 and 2,048 grid cells, and exact pooled quantiles (not
  private: a ceiling), each scored by pooled leave-one-record-out VEB F1 at ε = 8 with the DP trees' chosen size
  (5 rounds of depth 2). Each fold draws fresh noise (OS entropy), so runs differ by a few hundredths.

    .venv/bin/python bench/_tree_bins.py [--study fidelity,dp-cells] [--repeats 5]

Prints its tables (≈ 20 s for fidelity, ≈ 45 s per dp-cells repeat here, 2026-12-05); writes nothing. The rule
for the private sketch's grid (`shared.fl.trees.SKETCH_GRID_CELLS`): of the three cell counts, the one with the
highest mean over the repeats.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import load_mitdb_split


def fidelity(X: list[np.ndarray], n_bins: int = 256) -> None:
    from shared.fl.trees import client_sketch, merge_sketches

    pooled = np.concatenate(X)
    targets = np.linspace(0, 1, n_bins)[1:-1]
    for points in (257, 513, 1025, 2049):
        edges = merge_sketches([client_sketch(f, points) for f in X], n_bins)
        errors = []
        for f in range(pooled.shape[1]):
            column = np.sort(pooled[:, f][np.isfinite(pooled[:, f])])
            below = np.searchsorted(column, edges[f], side="right") / len(column)  # share of beats under each edge
            errors.append(np.abs(below - targets) * (n_bins - 2))
        e = np.concatenate(errors)
        print(f"sketch of {points} points: edge error in bins — median {np.median(e):.2f}, 95th percentile "
              f"{np.percentile(e, 95):.2f}, max {e.max():.1f}", flush=True)


DP_KINDS = ("fixed log grid", "private sketch, 512 cells", "private sketch, 1024 cells", "private sketch, 2048 cells",
            "exact pooled quantiles")


def _edges(kind: str, booster: Any, features: list[np.ndarray]) -> np.ndarray:
    """One fold's 16-bin edges of `kind` (the private sketch spends a release of `booster`'s)."""
    from bench.fl_trees import DP_BINS
    from shared.fl.trees import public_edges, sketch_grid

    if kind == "fixed log grid":
        return public_edges(features[0].shape[1], DP_BINS)
    if kind == "exact pooled quantiles":
        return np.asarray(np.nanquantile(np.concatenate(features), np.linspace(0, 1, DP_BINS)[1:-1], axis=0).T)
    return np.asarray(booster.private_edges(features, DP_BINS, grid=sketch_grid(int(kind.split()[-2]))))


def _dp_score(X: list[np.ndarray], y: list[np.ndarray], config: Any, kind: str) -> float:
    """Pooled leave-one-record-out VEB F1 of one DP configuration (fresh noise in every fold; exact class counts
    for the weights)."""
    from bench.fl_trees import dp_class_weights, pooled_loro_veb_f1
    from shared.fl.trees import Client, FederatedBoosting, bin_features

    def fit(features: list[np.ndarray], labels: list[np.ndarray]) -> Any:
        booster = FederatedBoosting(config)
        edges = _edges(kind, booster, features)
        weights = dp_class_weights(np.sum([np.bincount(lab, minlength=4) for lab in labels], axis=0))
        return booster.fit([Client(bin_features(f, edges), lab, weights[lab])
                            for f, lab in zip(features, labels, strict=True)], edges)

    return pooled_loro_veb_f1(X, y, fit)


def dp_cells(X: list[np.ndarray], y: list[np.ndarray], epsilon: float = 8.0, repeats: int = 1) -> None:
    from bench.fl_trees import DP_WEIGHT_CAP
    from shared.fl.trees import TreeConfig, noise_multiplier_for

    for kind in DP_KINDS:
        base = TreeConfig(rounds=5, max_depth=2, learning_rate=0.5, clip=DP_WEIGHT_CAP, min_hessian=5.0,
                          private_edges=kind.startswith("private"))
        config = replace(base, noise_multiplier=noise_multiplier_for(epsilon, base))
        scores = [_dp_score(X, y, config, kind) for _ in range(repeats)]
        runs = f" (sd {np.std(scores):.3f}; runs {', '.join(f'{v:.3f}' for v in scores)})" if repeats > 1 else ""
        print(f"DP trees, ε = {epsilon:g}, {kind}: pooled VEB F1 {np.mean(scores):.3f}{runs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="fidelity,dp-cells", help="fidelity, dp-cells, or both")
    parser.add_argument("--repeats", type=int, default=5,
                        help="dp-cells: runs per kind, each with fresh noise (one run's pooled F1 moves by ±0.03)")
    args = parser.parse_args()
    from bench.fl_trees import _table
    from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES

    ds1 = load_mitdb_split("DS1")
    X, y = _table(ds1, sorted(ds1), labelled=True)
    studies = args.study.split(",")
    if "fidelity" in studies:
        fidelity(X)
    if "dp-cells" in studies:
        columns = [FEATURE_NAMES.index(name) for name in DP_FEATURES]
        dp_cells([f[:, columns] for f in X], y, repeats=args.repeats)


if __name__ == "__main__":
    main()
