"""Federated gradient-boosted trees on record-relative beat features (issue 15, first step): how close does a
model class that uses the wearer's own rhythm and beat as reference come to the VEB bar, federated?

MIT-BIH DS1's 22 records are 22 clients. Features: `shared.model.tree_features` (label-free, per record). Bins:
the clients' merged quantile sketches. Trees: `shared.fl.trees.FederatedBoosting` (summed gradient/hessian
histograms, in packed Paillier's fixed point; the first releases through real Paillier, asserted equal). The
growth policy and the number of rounds are the ones `bench/_trees_loro.py` chose on DS1 alone by pooled
leave-one-record-out (read from bench/results/fl_trees_loro.json; run that first); the model is then trained on
all of DS1 and read once on DS2, beside scikit-learn's central HistGradientBoosting with the same cell. The
result is also `federated_encrypted` in bench/results/fl_accuracy.json.

Then the same with sample-level DP at ε = 8, δ = 1e-5 (`--epsilon`): a compact model (the eight
`DP_FEATURES`, data-independent bins, weighted gradient and hessian clipped, Gaussian noise on every released
histogram and on the class counts, the RDP accountant over all of them), its size chosen on DS1 by pooled
leave-one-record-out too (with the noise on), then trained on DS1 with three noise seeds and reported on DS2.

    .venv/bin/python bench/fl_trees.py [--parts dp,federated] [--epsilon 8] [--verify 2]

Writes bench/results/fl_trees.json, `federated_encrypted` in bench/results/fl_accuracy.json and the model at
bench/results/model_trees.npz (`cardiomesh evaluate --model` reads it).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import load_mitdb_split, veb_f1, write_result


def _table(sets: dict[str, Any], records: list[str], *, labelled: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from shared.model.tree_features import record_features

    X, y = [], []
    for r in records:
        beats = sets[r]
        features = record_features(beats)
        keep = (beats.y >= 0) & (beats.y < 4) if labelled else np.ones(len(beats.y), dtype=bool)
        X.append(features[keep])
        y.append(beats.y[keep])
    return X, y


def _cell_config(params: dict[str, Any], rounds: int) -> tuple[Any, int, int]:
    """The federated trainer's configuration for one of `bench/_trees_loro.py`'s cells (scikit-learn's parameter
    names), with its bins and sketch points: (TreeConfig, n_bins, sketch points)."""
    from shared.fl.trees import TreeConfig

    leaves = params["max_leaf_nodes"]
    config = TreeConfig(rounds=rounds, max_depth=6, learning_rate=0.1, lam=params["l2_regularization"],
                        min_hessian=1e-3,  # scikit-learn's min_hessian_to_split
                        max_leaves=leaves, min_samples_leaf=params["min_samples_leaf"] if leaves else 0)
    n_bins = params["max_bins"] + 1  # + bin 0, for missing values
    return config, n_bins, n_bins + 1


def _balanced_weights(y: list[np.ndarray]) -> np.ndarray:
    """Balanced class weights from the clients' summed class counts (each a count they may share)."""
    from shared.fl.trees import class_weights

    return class_weights(np.sum([np.bincount(labels, minlength=4) for labels in y], axis=0))


def _fit(X: list[np.ndarray], y: list[np.ndarray], config: Any, n_bins: int, points: int,
         aggregate: Any = None) -> tuple[Any, Any]:
    from shared.fl.trees import Client, FederatedBoosting, bin_features, client_sketch, merge_sketches

    weights = _balanced_weights(y)
    edges = merge_sketches([client_sketch(features, points) for features in X], n_bins)
    clients = [Client(bin_features(f, edges), labels, weights[labels]) for f, labels in zip(X, y, strict=True)]
    booster = FederatedBoosting(config) if aggregate is None else FederatedBoosting(config, aggregate=aggregate)
    return booster.fit(clients, edges), booster


def client_bound(y: list[np.ndarray]) -> float:
    """|entry| bound of one client's histogram: its beats × the largest class weight (a gradient is ≤ 1 in
    size before weighting, a hessian ≤ ¼, a count 1). Sized for DS1's clients, like the additive model's."""
    present = np.sum([np.bincount(labels, minlength=4) for labels in y], axis=0) > 0
    heaviest = float(np.max(_balanced_weights(y)[present]))  # a class no beat has weighs nothing
    return float(np.ceil(max(len(labels) for labels in y) * max(heaviest, 1.0) / 1000) * 1000)


VALUE_BITS = 32  # fixed-point bits per histogram entry: the most packing allows; a leaf's −G/H needs them

#: (rounds, depth, learning rate) tried for the DP model, 16 bins each: few releases, each one worth it
DP_GRID = ((5, 2, 0.5), (5, 3, 0.5), (10, 3, 0.4))
DP_BINS = 16
DP_WEIGHT_CAP = 2.0  # sqrt-balanced class weights, capped: the clip (and so the noise) scales with them


def dp_class_weights(counts: np.ndarray) -> np.ndarray:
    """The DP trees' class weights from (noised or exact) class counts: sqrt-balanced, capped at DP_WEIGHT_CAP."""
    from shared.fl.trees import class_weights

    return class_weights(counts, power=0.5, cap=DP_WEIGHT_CAP)


def pooled_loro_veb_f1(X: list[np.ndarray], y: list[np.ndarray],
                       fit: Callable[[list[np.ndarray], list[np.ndarray]], Any]) -> float:
    """Each client held out once, `fit` on the others (a model with `predict_proba`); VEB F1 of the held-out
    predictions pooled (ADR 0019's leave-one-record-out)."""
    predictions = []
    for held in range(len(X)):
        model = fit([f for i, f in enumerate(X) if i != held], [lab for i, lab in enumerate(y) if i != held])
        predictions.append(model.predict_proba(X[held]).argmax(axis=1))
    return veb_f1(np.concatenate(y), np.concatenate(predictions))


def _fit_dp(X: list[np.ndarray], y: list[np.ndarray], rounds: int, depth: int, lr: float, epsilon: float,
            seed: int, sample_rate: float = 1.0, aggregate: Any = None) -> tuple[Any, float, float]:
    """A sample-level DP model; (model, noise multiplier, ε spent at δ = 1e-5)."""
    from shared.fl.trees import (
        Client,
        FederatedBoosting,
        TreeConfig,
        bin_features,
        dp_epsilon,
        noise_multiplier_for,
    )

    features = X[0].shape[1]
    base = TreeConfig(rounds=rounds, max_depth=depth, learning_rate=lr, clip=DP_WEIGHT_CAP, min_hessian=5.0,
                      seed=seed, sample_rate=sample_rate, private_edges=True)
    z = noise_multiplier_for(epsilon, base) if np.isfinite(epsilon) else 0.0
    config = replace(base, noise_multiplier=z)
    rng = np.random.default_rng()  # the class counts' noise: secret, like the histograms' (TreeConfig.noise_seed)
    sigma = z * DP_WEIGHT_CAP * np.sqrt(2 * features)  # ≥ z × the counts' sensitivity (1): a safe bound
    counts = np.sum([np.bincount(labels, minlength=4) for labels in y], axis=0) + (rng.normal(0, sigma, 4)
                                                                                  if z else 0.0)
    weights = dp_class_weights(counts)
    booster = FederatedBoosting(config) if aggregate is None else FederatedBoosting(config, aggregate=aggregate)
    # the bins from a private sketch of the beats (one more release, accounted): the data-independent grid the
    # DP trees had used put RR ratios from 0.31 to 1.23 in one bin (DS1 leave-one-record-out, ε = 8, 5 rounds of
    # depth 2, mean of 5 noise draws: VEB F1 0.849 with that grid, 0.884 with the sketch — bench/_tree_bins.py)
    edges = booster.private_edges(X, DP_BINS)
    clients = [Client(bin_features(f, edges), labels, weights[labels]) for f, labels in zip(X, y, strict=True)]
    model = booster.fit(clients, edges)
    return model, z, dp_epsilon(config, z) if z else float("inf")


def _dp_part(ds1: dict[str, Any], ds2: dict[str, Any], epsilon: float) -> tuple[dict[str, Any], list[str]]:
    from shared.model.train import metrics
    from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES

    columns = [FEATURE_NAMES.index(name) for name in DP_FEATURES]

    def table(sets: dict[str, Any], records: list[str], labelled: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
        X, y = _table(sets, records, labelled=labelled)
        return [f[:, columns] for f in X], y

    # the size, chosen on DS1 by pooled leave-one-record-out (as bench/_trees_loro.py chooses the no-DP model),
    # the noise on in every one of the 21-record fits
    X, y = table(ds1, sorted(ds1), True)
    cv: dict[str, list[float]] = {}
    for rounds, depth, lr in DP_GRID:
        def fit(features: list[np.ndarray], labels: list[np.ndarray], r: int = rounds, d: int = depth,
                rate: float = lr) -> Any:
            return _fit_dp(features, labels, r, d, rate, epsilon, seed=0)[0]

        cv[f"{rounds} rounds, depth {depth}, lr {lr}"] = [pooled_loro_veb_f1(X, y, fit)]
        print(f"sample DP, DS1 leave-one-record-out: {rounds} rounds, depth {depth}, lr {lr}: VEB F1 "
              f"{cv[f'{rounds} rounds, depth {depth}, lr {lr}'][0]:.3f}", flush=True)
    chosen = max(cv, key=lambda k: float(np.mean(cv[k])))
    rounds, depth, lr = next(g for g in DP_GRID if f"{g[0]} rounds, depth {g[1]}, lr {g[2]}" == chosen)
    X2, y2 = table(ds2, sorted(ds2), False)
    y2_all, missed = np.concatenate(y2), sum(s.missed for s in ds2.values())
    per_seed = []
    for seed in (0, 1, 2):
        model, z, spent = _fit_dp(X, y, rounds, depth, lr, epsilon, seed=seed)
        proba = model.predict_proba(np.concatenate(X2))
        per_seed.append(metrics(y2_all, proba.argmax(axis=1), 1 - proba[:, 0], missed=missed))
    # seed 0 again, every histogram through packed Paillier (2048-bit, the coordinator's real key type): the edge
    # adds ciphertexts blind, the coordinator decrypts only sums of ≥ 2 clients
    import tempfile

    from cloud_expert.coordinator.keys import load_or_create
    from shared.fl.trees import SKETCH_GRID_CELLS, PackedSum

    with tempfile.TemporaryDirectory() as folder:
        keys = load_or_create(Path(folder))
    packed = PackedSum(keys.paillier.public_key, keys.paillier.private_key,
                       clip=DP_WEIGHT_CAP * max(len(labels) for labels in y) + 50.0)
    encrypted_started = time.perf_counter()
    encrypted_model, _, _ = _fit_dp(X, y, rounds, depth, lr, epsilon, seed=0, aggregate=packed)
    encrypted_s = time.perf_counter() - encrypted_started
    encrypted_proba = encrypted_model.predict_proba(np.concatenate(X2))
    encrypted = metrics(y2_all, encrypted_proba.argmax(axis=1), 1 - encrypted_proba[:, 0], missed=missed)
    # a diagnostic, after the choice: the same model trained without noise — is DP the limit, or the model?
    twin, _, _ = _fit_dp(X, y, rounds, depth, lr, float("inf"), seed=0)
    twin_proba = twin.predict_proba(np.concatenate(X2))
    without_noise = metrics(y2_all, twin_proba.argmax(axis=1), 1 - twin_proba[:, 0], missed=missed)
    v_se = [m["per_class"]["V"]["se"] for m in per_seed]
    v_ppv = [m["per_class"]["V"]["ppv"] for m in per_seed]
    result = {
        "level": "sample", "epsilon": round(spent, 3), "delta": 1e-5, "noise_multiplier": round(z, 3),
        "features": list(DP_FEATURES), "bins": DP_BINS, "seeds": [0, 1, 2],
        "bin_edges": f"a private sketch: beat counts over {SKETCH_GRID_CELLS} public grid cells, one more release "
                     "of the same noise multiplier (accounted)",
        "cv_veb_f1_ds1": {k: [round(x, 4) for x in v] for k, v in cv.items()},
        "chosen": {"rounds": rounds, "depth": depth, "learning_rate": lr,
                   "rule": "max pooled VEB F1, DS1 leave-one-record-out, noise on"},
        "veb_se_mean": round(float(np.mean(v_se)), 4), "veb_ppv_mean": round(float(np.mean(v_ppv)), 4),
        "macro_f1_mean": round(float(np.mean([m["macro_f1"] for m in per_seed])), 4),
        "per_seed": per_seed, "same_model_without_noise": without_noise,
        "encrypted_seed_0": encrypted, "encrypted_bytes_per_client": packed.bytes_sent // len(X),
        "encrypted_s": round(encrypted_s, 1),
    }
    lines = [f"seed {i}: VEB {m['per_class']['V']['se']:.3f} / {m['per_class']['V']['ppv']:.3f}, "
             f"SVEB {m['per_class']['S']['se']:.3f} / {m['per_class']['S']['ppv']}, macro-F1 {m['macro_f1']:.3f}"
             for i, m in enumerate(per_seed)]
    twin_v = without_noise["per_class"]["V"]
    return result, [f"chosen on DS1: {chosen} (VEB F1 {np.mean(cv[chosen]):.3f}), z {z:.2f}, ε {spent:.2f}",
                    *lines, f"same model without noise: VEB {twin_v['se']:.3f} / {twin_v['ppv']:.3f}",
                    f"seed 0 encrypted (packed Paillier 2048): VEB {encrypted['per_class']['V']['se']:.3f} / "
                    f"{encrypted['per_class']['V']['ppv']:.3f}, {packed.bytes_sent // len(X):,} B per client, "
                    f"{encrypted_s:.0f} s"]


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epsilon", type=float, default=8.0, help="sample-level DP budget (δ = 1e-5)")
    parser.add_argument("--parts", default="dp,federated,compact",
                        help="dp: the sample-DP trees; federated: the federated + encrypted trees; compact: the "
                             "cheaper cell bench/_tree_cost.py chose (each keeps the others' results)")
    parser.add_argument("--verify", type=int, default=2,
                        help="releases of the federated part also run through real Paillier (each ≈ 15 s here)")
    parser.add_argument("--exact", action="store_true",
                        help="also train the federation on exact sums (a diagnostic of the fixed point's rounding)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    ds1, ds2 = load_mitdb_split("DS1"), load_mitdb_split("DS2")
    if "dp" in parts:
        import json

        from bench._common import RESULTS

        dp, dp_lines = _dp_part(ds1, ds2, args.epsilon)
        for line_ in dp_lines:
            print(f"sample DP: {line_}", flush=True)
        path = RESULTS / "fl_trees.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        previous["federated_trees_sample_dp"] = dp
        write_result("fl_trees", previous, [(f"sample DP ε ≤ {args.epsilon:g}", x) for x in dp_lines])
    if "federated" in parts:
        federated_part(ds1, ds2, args.verify, args.exact)
    if "compact" in parts:
        compact_part(ds1, ds2, args.verify)


@dataclass
class _CellRun:
    """One no-DP cell trained federated (packed-Paillier fixed point) on DS1 and read once on DS2, beside central
    scikit-learn on the same cell."""

    X: list[np.ndarray]
    model: Any
    booster: Any
    verified: Any
    bound: float
    fit_s: float
    federated: dict[str, Any]
    reference: dict[str, Any]
    agree: float
    bytes_per_value: float
    exact_metrics: dict[str, Any] | None = None
    agree_exact: float | None = None

    @property
    def ciphertext_bytes_per_client(self) -> int:
        """Ciphertext per value of the releases that went through Paillier, times every value a client sent."""
        return round(self.bytes_per_value * self.booster.floats_per_client)


def _train_cell(ds1: dict[str, Any], ds2: dict[str, Any], params: dict[str, Any], rounds: int,
                columns: int | None, verify: int, exact_twin: bool) -> _CellRun:
    """`columns`: the first this many of `tree_features`' columns (None: all)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from bench._common import PaillierChecked
    from shared.model.train import metrics

    config, n_bins, points = _cell_config(params, rounds)
    X, y = _table(ds1, sorted(ds1), labelled=True)
    X2, y2 = _table(ds2, sorted(ds2), labelled=False)
    if columns is not None:
        X, X2 = [x[:, :columns] for x in X], [x[:, :columns] for x in X2]
    y2_all, missed = np.concatenate(y2), sum(s.missed for s in ds2.values())
    bound = client_bound(y)
    verified = PaillierChecked(verify, bound=bound, value_bits=VALUE_BITS)
    started = time.perf_counter()
    model, booster = _fit(X, y, config, n_bins, points, aggregate=verified)
    fit_s = time.perf_counter() - started
    proba = model.predict_proba(np.concatenate(X2))
    federated = metrics(y2_all, proba.argmax(axis=1), 1 - proba[:, 0], missed=missed)
    exact_metrics, exact_pred = None, None
    if exact_twin:  # a diagnostic: the same federation on exact sums — what the encryption's rounding costs
        exact, _ = _fit(X, y, config, n_bins, points)
        exact_proba = exact.predict_proba(np.concatenate(X2))
        exact_pred = exact_proba.argmax(axis=1)
        exact_metrics = metrics(y2_all, exact_pred, 1 - exact_proba[:, 0], missed=missed)
    central = HistGradientBoostingClassifier(class_weight="balanced", max_iter=rounds, max_depth=6,
                                             learning_rate=0.1, early_stopping=False, random_state=0, **params)
    central.fit(np.concatenate(X), np.concatenate(y))
    cp = central.predict_proba(np.concatenate(X2))
    reference = metrics(y2_all, cp.argmax(axis=1), 1 - cp[:, 0], missed=missed)
    # ciphertext per value from the releases that went through Paillier, times every value a client sent
    bytes_per_value = verified.packed.bytes_sent / max(verified.floats, 1) / len(X)
    agree = float(np.mean(proba.argmax(axis=1) == cp.argmax(axis=1)))
    agree_exact = None if exact_pred is None else float(np.mean(proba.argmax(axis=1) == exact_pred))
    return _CellRun(X, model, booster, verified, bound, fit_s, federated, reference, agree, bytes_per_value,
                    exact_metrics, agree_exact)


def federated_part(ds1: dict[str, Any], ds2: dict[str, Any], verify: int, exact_twin: bool = False) -> None:
    """The federated + encrypted trees, no DP: growth and rounds as `bench/_trees_loro.py` chose on DS1, trained
    on DS1's 22 clients through the packed-Paillier arithmetic (`FixedPointSum`, every one of the first `verify`
    releases also through real Paillier and asserted equal), read once on DS2."""
    import json

    from bench._common import RESULTS
    from bench.fl_accuracy import _merge

    loro_path = RESULTS / "fl_trees_loro.json"
    loro = json.loads(loro_path.read_text()) if loro_path.exists() else {}
    chosen = loro.get("chosen")
    if not chosen:
        raise SystemExit("no model chosen on DS1 yet: run .venv/bin/python bench/_trees_loro.py first")
    cell = loro["cells"][chosen]
    previous = json.loads((RESULTS / "fl_trees.json").read_text()) if (RESULTS / "fl_trees.json").exists() else {}
    if "interaction_cst" in cell["params"]:  # the additive class won: bench/fl_additive.py's model is the one
        previous["chosen"] = {"cell": chosen, "rule": loro["rule"], "class": "additive (bench/fl_additive.py)"}
        write_result("fl_trees", previous, [("chosen on DS1", f"{chosen}: the additive class; no trees trained")])
        return
    run = _train_cell(ds1, ds2, cell["params"], cell["rounds"], None, verify, exact_twin)
    federated, reference, booster, verified, fit_s = run.federated, run.reference, run.booster, run.verified, run.fit_s
    part = {
        **federated, "epsilon": None, "delta": None, "level": None,
        "seeds": [0, 1, 2],
        "noise": "none (no DP); the training draws nothing at random and the decrypted sums are exact integers, so "
                 "every seed gives this one model",
        "per_seed": [federated] * 3,
        "model": f"federated histogram boosting, shared.fl.trees ({chosen})",
        "chosen": {"cell": chosen, "rule": loro["rule"], "ds1_veb_f1": cell["veb_f1"],
                   "by": "bench/_trees_loro.py → bench/results/fl_trees_loro.json"},
        "encryption": f"packed Paillier 2048-bit fixed point ({VALUE_BITS}-bit values, client bound {run.bound:g}), "
                      f"sums of ≥ 2 clients; the first {verified.verified} releases through real Paillier (asserted "
                      f"equal to the fixed point), the rest through the same fixed-point arithmetic",
        "releases": booster.releases, "floats_per_client": booster.floats_per_client,
        "ciphertext_bytes_per_client_estimated": run.ciphertext_bytes_per_client,
        "paillier_s_verified": round(verified.seconds, 1), "fit_s": round(fit_s, 1),
        "central_same_kind": reference, "agreement_with_central": round(run.agree, 4),
    }
    if run.exact_metrics is not None:
        part["exact_sums_diagnostic"] = {k: v for k, v in run.exact_metrics.items()
                                         if k in ("per_class", "macro_f1", "ec57")}
        part["agreement_with_exact_sums"] = round(run.agree_exact or 0.0, 4)
    _merge("fl_accuracy", "federated_encrypted", part)
    from shared.fl.trees import save_model

    save_model(RESULTS / "model_trees.npz", run.model, {
        "train": "MIT-BIH DS1, 22 clients, federated histogram boosting in packed Paillier's fixed point",
        "cell": chosen, "rule": loro["rule"], "privacy": "encrypted sums, no DP", "features": "tree_features"})
    previous.update({
        "clients": len(run.X), "features": int(run.X[0].shape[1]),
        "chosen": part["chosen"], "federated_trees": federated, "central_hgb_same_features": reference,
        "summed_histograms": booster.releases, "floats_per_client": booster.floats_per_client,
        "fit_s": round(fit_s, 1), "encryption": part["encryption"],
        "ciphertext_bytes_per_client_estimated": part["ciphertext_bytes_per_client_estimated"],
        "agreement_with_central": part["agreement_with_central"],
        "privacy": "federated_trees: packed Paillier, no DP; federated_trees_sample_dp: sample-level DP",
    })
    for stale in ("cv_veb_f1_ds1", "seconds"):  # the fixed-halves grid's: replaced by the leave-one-record-out run
        previous.pop(stale, None)

    def line(m: dict[str, Any]) -> str:
        v, s = m["per_class"]["V"], m["per_class"]["S"]
        return (f"VEB Se {v['se']:.3f} / +P {v['ppv']:.3f} (EC57 {m['ec57']['veb']['se']:.3f} / "
                f"{m['ec57']['veb']['ppv']:.3f}), SVEB {s['se']:.3f} / {s['ppv']}, macro-F1 {m['macro_f1']:.3f}")

    write_result("fl_trees", previous, [
        ("chosen on DS1", f"{chosen} (pooled leave-one-record-out VEB F1 {cell['veb_f1']:.4f})"),
        ("federated + encrypted trees, DS2", line(federated)),
        *((("the same federation on exact sums, DS2", line(run.exact_metrics)),) if run.exact_metrics else ()),
        ("central HGB, same cell, DS2", line(reference)),
        ("agreement with central", f"{run.agree:.4f} of DS2 beats get the same class"),
        ("protocol", f"{booster.releases} summed histograms, {booster.floats_per_client:,} floats per client, "
                     f"≈ {part['ciphertext_bytes_per_client_estimated']:,} B of ciphertext per client "
                     f"(from {verified.verified} releases through Paillier, {verified.seconds:.0f} s)"),
        ("fit", f"{fit_s:.0f} s"),
    ])


def compact_part(ds1: dict[str, Any], ds2: dict[str, Any], verify: int) -> None:
    """The cheaper no-DP cell `bench/_tree_cost.py` chose on DS1 (fewer bins or features, within 0.005 VEB F1 of the
    chosen cell), trained as `federated_part` trains that one and read once on DS2 — beside it, not instead of
    it: `federated_encrypted` stays the accuracy rule's choice."""
    import json
    from dataclasses import replace as replace_model

    from bench._common import RESULTS
    from shared.fl.trees import save_model
    from shared.model.tree_features import n_features

    cost_path = RESULTS / "fl_trees_cost.json"
    cost = json.loads(cost_path.read_text()) if cost_path.exists() else {}
    chosen = cost.get("chosen")
    if not chosen or chosen == "none":  # nothing to train: said, not failed (make bench runs every part)
        print(f"compact: no cheaper cell chosen on DS1 ({chosen!r}; bench/_tree_cost.py decides)", flush=True)
        return
    cell = cost["cells"][chosen]
    columns = cell["features"] if cell["features"] < n_features() else None  # fewer: the first ones
    run = _train_cell(ds1, ds2, cell["params"], cell["rounds"], columns, verify, False)
    model = run.model if columns is None else replace_model(run.model, columns=tuple(range(columns)))
    save_model(RESULTS / "model_trees_compact.npz", model, {
        "train": "MIT-BIH DS1, 22 clients, federated histogram boosting in packed Paillier's fixed point",
        "cell": chosen, "rule": cost["rule"], "privacy": "encrypted sums, no DP", "features": "tree_features"})
    per_client = run.booster.floats_per_client
    part = {
        "cell": chosen, "rule": cost["rule"], "ds1_veb_f1": cell["veb_f1"],
        "by": "bench/_tree_cost.py → bench/results/fl_trees_cost.json", "federated": run.federated,
        "central_same_kind": run.reference, "agreement_with_central": round(run.agree, 4),
        "releases": run.booster.releases, "floats_per_client": per_client,
        "ciphertext_bytes_per_client_estimated": run.ciphertext_bytes_per_client,
        "fit_s": round(run.fit_s, 1), "model": "bench/results/model_trees_compact.npz",
    }
    path = RESULTS / "fl_trees.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous["compact"] = part
    v, c = run.federated["per_class"]["V"], run.reference["per_class"]["V"]
    write_result("fl_trees", previous, [
        ("compact cell (DS1)", f"{chosen} (pooled leave-one-record-out VEB F1 {cell['veb_f1']:.4f})"),
        ("compact federated + encrypted, DS2", f"VEB Se {v['se']:.3f} / +P {v['ppv']:.3f} (EC57 "
                                               f"{run.federated['ec57']['veb']['se']:.3f} / "
                                               f"{run.federated['ec57']['veb']['ppv']:.3f}), macro-F1 "
                                               f"{run.federated['macro_f1']:.3f}"),
        ("compact central HGB, DS2", f"VEB Se {c['se']:.3f} / +P {c['ppv']:.3f}"),
        ("compact protocol", f"{run.booster.releases} summed histograms, {per_client:,} values per client, ≈ "
                             f"{part['ciphertext_bytes_per_client_estimated']:,} B of ciphertext per client"),
    ])


if __name__ == "__main__":
    main()
