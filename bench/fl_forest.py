"""The sample-DP beat model issue 15 asks for, as a random-structure forest: federated, encrypted, ε = 8 per wearer.

`bench/_dp_forest.py --protocol loro` chose, on DS1 alone (pooled leave-one-record-out, against the additive
model scored the same way), the model class, its cell and its V-logit offset. This trains that cell on MIT-BIH
DS1's 22 records as 22 clients (`shared.fl.forest`: two releases — the fine-grid count table, then every tree's
leaf counts — each client adding its share of the Gaussian noise, secret, from OS entropy), through the
packed-Paillier fixed point (2048-bit key, 24-bit values, sums of ≥ 2 clients). Seed 0's two releases also run
through real packed Paillier (client encrypts, edge adds blind, coordinator decrypts), asserted equal to the
fixed-point sums. Three seeds — each draws the public structure; the noise is fresh each time — are scored once
each on DS2, as is the central model of the same kind (the same forest on pooled DS1, no noise) for the macro-F1
comparison.

    .venv/bin/python bench/fl_forest.py [--epsilon 8]

Writes bench/results/fl_forest.json, the key `federated_encrypted_sample_dp` of bench/results/fl_accuracy.json
(the additive model's row, there before, moves to `federated_encrypted_sample_dp_additive`) and the sample-DP
model at bench/results/model_forest_dp.npz (`cardiomesh evaluate --model … --records DIR` reads it). About 10 min
here. Without a forest chosen on DS1 it says so and writes nothing.
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

from bench._common import RESULTS, PaillierChecked, load_mitdb_split, write_result
from bench._dp_forest import fine_tables

DELTA = 1e-5
SEEDS = (0, 1, 2)
CLIENT_BOUND = 8000.0  # |entry| bound of one client's release: a record's beats (≤ 3,360 in DS1) + its noise share
KEY = "federated_encrypted_sample_dp"
MODEL = RESULTS / "model_forest_dp.npz"


def _cell(name: str) -> dict[str, Any]:
    """'dp, 16 bins, 150 trees, depth 8' → its parts."""
    features, bins, trees, depth = (part.strip() for part in name.split(","))
    return {"features": features, "bins": int(bins.split()[0]), "trees": int(trees.split()[0]),
            "depth": int(depth.split()[1])}


def _scored(model: Any, columns: np.ndarray, sets: list[Any]) -> dict[str, Any]:
    from shared.fl import forest
    from shared.model.evaluation import per_recording_metrics

    return per_recording_metrics(lambda s: forest.predict_beats(model, columns, s), sets)


def main() -> None:
    from bench.fl_accuracy import _merge
    from bench.fl_additive import _line, _summary
    from shared.fl import forest
    from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilon", type=float, default=8.0, help="sample-level DP budget per client (δ = 1e-5)")
    args = parser.parse_args()
    study = json.loads((RESULTS / "fl_dp_forest_loro.json").read_text())
    if study["chosen"].startswith("none"):
        raise SystemExit(f"bench/_dp_forest.py --protocol loro chose no forest ({study['chosen']}): nothing to train")
    cell = _cell(study["chosen"])
    offset = float(study["cells"][study["chosen"]]["offset"])
    bias = np.array([0.0, 0.0, offset, 0.0])
    columns = [FEATURE_NAMES.index(f) for f in DP_FEATURES] if cell["features"] == "dp" else list(
        range(len(FEATURE_NAMES)))
    started = time.perf_counter()
    clients = list(fine_tables(load_mitdb_split("DS1"), columns).values())
    ds2 = list(load_mitdb_split("DS2").values())
    base = forest.ForestConfig(trees=cell["trees"], depth=cell["depth"], n_bins=cell["bins"])
    runs, unbiased, verified = [], [], {}
    spent = float("nan")
    for seed in SEEDS:
        config = forest.calibrate(_with_seed(base, seed), args.epsilon, delta=DELTA)
        spent = forest.accounted_epsilon(config, delta=DELTA)
        checked = PaillierChecked(None, CLIENT_BOUND) if seed == 0 else None
        trainer = forest.FederatedForest(config, aggregate=checked or _fixed_point())
        fitted = trainer.fit(clients)
        model = forest.with_class_bias(fitted, bias)
        unbiased.append(_scored(fitted, np.asarray(columns), ds2))
        runs.append(_scored(model, np.asarray(columns), ds2))
        if checked is not None:
            verified = {"releases_through_paillier": checked.verified, "paillier_s": round(checked.seconds, 1),
                        "bytes_per_client": checked.packed.bytes_sent // len(clients),
                        "values_per_client": trainer.floats_per_client}
            forest.save(MODEL, model, columns, {
                "train": "MIT-BIH DS1, 22 clients, federated + packed Paillier", "level": "sample",
                "epsilon": round(spent, 3), "delta": DELTA, "cell": study["chosen"], "seed": seed,
                "v_logit_offset": offset, "features": [FEATURE_NAMES[c] for c in columns],
                "privacy": f"sample-level DP, ε {spent:.2f}, δ {DELTA:g}"})
        print(f"  seed {seed}: {_line(runs[-1])} ({time.perf_counter() - started:.0f} s)", flush=True)
    central_trainer = forest.FederatedForest(_with_seed(base, 0), aggregate=lambda v: np.sum(v, axis=0))
    pooled = [(np.concatenate([f for f, _ in clients]), np.concatenate([y for _, y in clients]))]
    central = _scored(forest.with_class_bias(central_trainer.fit(pooled), bias), np.asarray(columns), ds2)
    part = {
        **_summary(runs),
        "epsilon": round(spent, 3), "delta": DELTA, "level": "sample",
        "unit": ("one beat's feature row and label; a beat's effect on its neighbours' RR context and on the "
                 "record's medians is not bounded (docs/privacy.md §6)"),
        "noise": "each client's Gaussian share from OS entropy: the 3 seeds are 3 independent runs (and structures)",
        "seeds": list(SEEDS), "per_seed": runs,
        "model": "random-structure forest, shared.fl.forest (2 releases)",
        "chosen": {**cell, "cell": study["chosen"], "rule": study["rule"], "ds1_veb_f1": study["cells"][
            study["chosen"]]["veb_f1"], "additive_ds1_veb_f1": study["additive_ds1_veb_f1"],
                   "by": "bench/_dp_forest.py --protocol loro → bench/results/fl_dp_forest_loro.json"},
        "v_logit_offset": {"value": offset, "rule": "the offset (−3 … 3, step 0.25) with the best pooled DS1 "
                                                    "leave-one-record-out VEB F1; folded into the saved model"},
        "without_offset": {k: v for k, v in _summary(unbiased).items() if k != "confusion"},
        "central_same_kind": central,
        "encryption": "packed Paillier 2048-bit fixed point (24-bit values), sums of ≥ 2 clients",
        "verified": verified,
    }

    def move_additive(current: dict[str, Any]) -> Any:
        previous = current.get(KEY)
        if previous and "forest" not in str(previous.get("model")):
            previous = {**previous, "moved": f"was `{KEY}` until bench/_dp_forest.py's leave-one-record-out rule "
                                             "on DS1 chose the DP forest for that key"}
            return previous
        return current.get(f"{KEY}_additive")

    current = json.loads((RESULTS / "fl_accuracy.json").read_text())
    moving = "forest" not in str(current.get(KEY, {}).get("model"))
    _merge("fl_accuracy", f"{KEY}_additive", move_additive,
           measured_at=current.get("measured", {}).get(KEY if moving else f"{KEY}_additive"))
    _merge("fl_accuracy", KEY, part)
    result = {"clients": len(clients), "delta": DELTA, KEY: part, "seconds": round(time.perf_counter() - started, 1)}
    write_result("fl_forest", result, [
        ("chosen on DS1", f"{study['chosen']}, V offset {offset:+.2f} (pooled LORO VEB F1 "
                          f"{part['chosen']['ds1_veb_f1']:.4f} against the additive's "
                          f"{study['additive_ds1_veb_f1']:.4f})"),
        (f"DS2, mean of 3 seeds, ε {spent:.2f}", _line(part)),
        *((f"seed {s}", _line(r)) for s, r in zip(SEEDS, runs, strict=True)),
        ("DS2 without the offset (diagnostic)", _line(part["without_offset"])),
        ("central, same kind, no noise", _line(central)),
        ("seed 0 via Paillier", f"{verified['releases_through_paillier']} releases, "
                                f"{verified['values_per_client']:,} values, {verified['bytes_per_client']:,} B per "
                                f"client, {verified['paillier_s']:.0f} s")])


def _with_seed(config: Any, seed: int) -> Any:
    from dataclasses import replace

    return replace(config, seed=seed)


def _fixed_point() -> Any:
    from shared.fl.trees import FixedPointSum

    return FixedPointSum(CLIENT_BOUND, value_bits=24)


if __name__ == "__main__":
    main()
