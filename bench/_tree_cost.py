"""Can the no-DP federated trees cost a watch less? Chosen on DS1 alone, by the same pooled leave-one-record-out
as `bench/_trees_loro.py` (issue 15, docs/fl.md).

The chosen cell (leaf-wise, ≤ 31 leaves, depth 6, ≥ 20 beats a leaf, 255 bins, 63 features, 200 rounds) makes
≈ 24,000 releases of 3 × 63 × 256 values each: ≈ 1.1 G values, ≈ 10.7 GB of ciphertext per watch. A release's
size is channels × features × bins, so fewer bins or features shrink every release. The cells here are the
chosen one with 63 or 31 bins, or with the 22 named features only (the 41 beat-window samples dropped).

The rule, fixed before any of these cells was scored: the cell (and number of rounds, 100 or 200) with the fewest
values per watch whose pooled DS1 VEB F1 is at least the chosen cell's (`fl_trees_loro.json`) less 0.005. Values
per watch are counted on the cell's model fit on all of DS1: one release of the root's histogram per tree, and one
of the smaller child's per split (scikit-learn's booster stands in, as in `bench/_trees_loro.py`).

    .venv/bin/python bench/_tree_cost.py [--cells bins-63,bins-31,named-22]

Writes bench/results/fl_trees_cost.json (each run adds its cells). DS2 is never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import RESULTS, write_result
from bench._trees_loro import CELLS as LORO_CELLS
from bench._trees_loro import ds1_table, pooled_scores

BASE = LORO_CELLS["leaf-wise"]
CELLS: dict[str, dict[str, Any]] = {
    "bins-63": {"params": {**BASE, "max_bins": 63}, "columns": None},
    "bins-31": {"params": {**BASE, "max_bins": 31}, "columns": None},
    "named-22": {"params": BASE, "columns": 22},
}
STAGES = (100, 200)
TOLERANCE = 0.005
CHANNELS = 3  # gradient, hessian, beat count (a leaf needs 20 beats)
RESULT = "fl_trees_cost"


def values_per_watch(model: Any, features: int, bins: int, rounds: int) -> int:
    """Values one watch sends for the first `rounds` rounds of `model`: per tree, the root's histogram and one per
    split (the smaller child's), each channels × features × (bins + bin 0)."""
    releases = sum(1 + (len(tree.nodes) - 1) // 2 for per_class in model._predictors[:rounds] for tree in per_class)
    return int(releases * CHANNELS * features * (bins + 1))


def choose(scores: dict[str, dict[str, Any]], reference: float) -> str | None:
    wanted = [f"{name}, {rounds} rounds" for name in CELLS for rounds in STAGES]
    if not all(cell in scores for cell in wanted):
        return None
    good = [cell for cell in wanted if scores[cell]["veb_f1"] >= reference - TOLERANCE]
    return min(good, key=lambda k: scores[k]["values_per_watch"]) if good else "none"


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", default=",".join(CELLS), help="which of the cells to run (others are kept)")
    args = parser.parse_args()
    loro = json.loads((RESULTS / "fl_trees_loro.json").read_text())
    reference_cell = loro["chosen"]
    reference = loro["cells"][reference_cell]
    path = RESULTS / f"{RESULT}.json"
    scores: dict[str, dict[str, Any]] = {}
    records, X_full, y = ds1_table()
    for name in args.cells.split(","):
        cell = CELLS[name]
        X = [x[:, : cell["columns"]] for x in X_full] if cell["columns"] else X_full

        def booster(cell: dict[str, Any] = cell) -> Any:
            return HistGradientBoostingClassifier(class_weight="balanced", max_iter=STAGES[-1], max_depth=6,
                                                  learning_rate=0.1, early_stopping=False, random_state=0,
                                                  **cell["params"])

        pooled: dict[int, list[np.ndarray]] = {s: [] for s in STAGES}
        started = time.perf_counter()
        for i, held in enumerate(records):
            train = [j for j in range(len(records)) if j != i]
            model = booster().fit(np.concatenate([X[j] for j in train]), np.concatenate([y[j] for j in train]))
            for rounds, pred in enumerate(model.staged_predict(X[i]), start=1):
                if rounds in pooled:
                    pooled[rounds].append(pred)
            print(f"{name}: record {held} held out ({i + 1}/22, {time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
        whole = booster().fit(np.concatenate(X), np.concatenate(y))
        truth = np.concatenate(y)
        for rounds, preds in pooled.items():
            scores[f"{name}, {rounds} rounds"] = {
                **pooled_scores(truth, np.concatenate(preds)), "params": cell["params"],
                "features": X[0].shape[1], "rounds": rounds,
                "values_per_watch": values_per_watch(whole, X[0].shape[1], cell["params"]["max_bins"], rounds),
                "seconds": round(time.perf_counter() - started, 1)}
    reference_values = values_per_watch(
        HistGradientBoostingClassifier(class_weight="balanced", max_iter=reference["rounds"], max_depth=6,
                                       learning_rate=0.1, early_stopping=False, random_state=0,
                                       **reference["params"]).fit(np.concatenate(X_full), np.concatenate(y)),
        X_full[0].shape[1], reference["params"]["max_bins"], reference["rounds"])
    # cells other runs (perhaps running beside this one) wrote meanwhile are kept
    scores = {**(json.loads(path.read_text())["cells"] if path.exists() else {}), **scores}
    chosen = choose(scores, reference["veb_f1"])
    table = [(cell, f"VEB F1 {s['veb_f1']:.4f} (Se {s['veb_se']:.4f}, +P {s['veb_ppv']:.4f}), "
                    f"{s['values_per_watch']:,} values a watch") for cell, s in scores.items()]
    write_result(RESULT, {
        "rule": f"fewest values per watch with pooled DS1 leave-one-record-out VEB F1 ≥ the chosen cell's − "
                f"{TOLERANCE}", "reference": {"cell": reference_cell, "veb_f1": reference["veb_f1"],
                                               "values_per_watch": reference_values},
        "cells": scores, "chosen": chosen},
        [(f"reference: {reference_cell}", f"VEB F1 {reference['veb_f1']:.4f}, {reference_values:,} values a watch"),
         *table, ("chosen", chosen or "(not yet: run every cell)")])


if __name__ == "__main__":
    main()
