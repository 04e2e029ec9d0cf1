"""Which way should the federated trees grow? Chosen on DS1 alone, by pooled leave-one-record-out (issue 15).

The two fixed DS1 halves that `bench/fl_trees.py` first chose with are too few to rank model classes (11 records
each; the halves preferred the additive model, leave-one-record-out the trees — docs/fl.md). Here every one of
DS1's 22 records is held out once, the other 21 train, and the held-out predictions are pooled before VEB F1 is
taken. scikit-learn's HistGradientBoosting stands in for the federated trainer: the federated trees are the
central trees grown on the same bins (`tests/shared/fl/test_trees.py`), and a tree grown leaf-wise without a leaf
cap is the level-wise tree, so each cell below is one of the federated trainer's growth policies:

* **level-wise** — `TreeConfig`'s first policy: every node to depth 6, L2 1, 63 bins, any leaf size;
* **leaf-wise** — scikit-learn's own: best leaf first, at most 31 leaves and depth 6, ≥ 20 beats a leaf, no L2,
  255 bins;
* **additive** — the model class `bench/fl_additive.py` federates (ADR 0017), stood in for by the same booster
  with no feature interactions (`interaction_cst="no_interactions"`): is a tree's interaction worth having?

All class-balanced, learning rate 0.1, scored at 100, 200 and 300 rounds. The rule: the cell and number of
rounds with the highest pooled VEB F1. DS2 is never read here.

    .venv/bin/python bench/_trees_loro.py [--rounds 100,200,300] [--cells level-wise,leaf-wise,additive]

Writes bench/results/fl_trees_loro.json (each run adds its cells; the choice is made once all are in), which
`bench/fl_trees.py` reads. ≈ 28 min here with one thread (2026-12-05).
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

from bench._common import RESULTS, load_mitdb_split, veb_f1, write_result

CELLS: dict[str, dict[str, Any]] = {
    "level-wise": {"max_leaf_nodes": None, "min_samples_leaf": 1, "l2_regularization": 1.0, "max_bins": 63},
    "leaf-wise": {"max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0, "max_bins": 255},
    "additive": {"max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0, "max_bins": 255,
                 "interaction_cst": "no_interactions"},
}
RESULT = "fl_trees_loro"


def ds1_table() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    from shared.model.tree_features import record_features

    ds1 = load_mitdb_split("DS1")
    records, X, y = sorted(ds1), [], []
    for r in records:
        beats = ds1[r]
        keep = (beats.y >= 0) & (beats.y < 4)
        X.append(record_features(beats)[keep])
        y.append(beats.y[keep])
    return records, X, y


def pooled_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """VEB F1, Se, +P and false V calls of pooled held-out predictions."""
    tp = int(np.sum((truth == 2) & (pred == 2)))
    return {"veb_f1": round(veb_f1(truth, pred), 4), "veb_se": round(tp / int(np.sum(truth == 2)), 4),
            "veb_ppv": round(tp / max(int(np.sum(pred == 2)), 1), 4),
            "false_v": int(np.sum((truth != 2) & (pred == 2)))}


def choose(scores: dict[str, dict[str, Any]], stages: list[int]) -> str | None:
    """The cell with the highest pooled VEB F1 — once every cell has been scored at every number of rounds
    (a choice among some cells would be a different rule)."""
    wanted = [f"{name}, {rounds} rounds" for name in CELLS for rounds in stages]
    if not all(cell in scores for cell in wanted):
        return None
    return max(wanted, key=lambda k: scores[k]["veb_f1"])  # cells left in the file from other grids do not run


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", default="100,200,300")
    parser.add_argument("--cells", default=",".join(CELLS), help="which of the cells to run (others are kept)")
    args = parser.parse_args()
    stages = sorted(int(r) for r in args.rounds.split(","))
    path = RESULTS / f"{RESULT}.json"
    scores: dict[str, dict[str, Any]] = json.loads(path.read_text())["cells"] if path.exists() else {}
    records, X, y = ds1_table()
    for name in args.cells.split(","):
        params = CELLS[name]
        pooled: dict[int, list[np.ndarray]] = {s: [] for s in stages}
        started = time.perf_counter()
        for i, held in enumerate(records):
            train = [j for j in range(len(records)) if j != i]
            model = HistGradientBoostingClassifier(class_weight="balanced", max_iter=stages[-1], max_depth=6,
                                                   learning_rate=0.1, early_stopping=False, random_state=0,
                                                   **params)
            model.fit(np.concatenate([X[j] for j in train]), np.concatenate([y[j] for j in train]))
            for rounds, pred in enumerate(model.staged_predict(X[i]), start=1):
                if rounds in pooled:
                    pooled[rounds].append(pred)
            print(f"{name}: record {held} held out ({i + 1}/22, {time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
        truth = np.concatenate(y)
        for rounds, preds in pooled.items():
            scores[f"{name}, {rounds} rounds"] = {
                **pooled_scores(truth, np.concatenate(preds)), "params": params, "rounds": rounds,
                "seconds": round(time.perf_counter() - started, 1)}
    chosen = choose(scores, stages)
    table = [(cell, f"VEB F1 {s['veb_f1']:.4f}, Se {s['veb_se']:.4f}, +P {s['veb_ppv']:.4f}, "
                    f"false V {s['false_v']}") for cell, s in scores.items()]
    write_result(RESULT, {"rule": "max pooled VEB F1, DS1 leave-one-record-out (22 fits a cell)",
                          "cells": scores, "chosen": chosen},
                 [*table, ("chosen", chosen or "(not yet: run every cell)")])


if __name__ == "__main__":
    main()
