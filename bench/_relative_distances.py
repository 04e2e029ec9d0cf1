"""Do morphology distances relative to the wearer's own typical distance help? A DS1-only study (issue 15).

Why it was asked: on DS2 most false V calls of every beat model come from record 222 (`bench/_false_v.py`, a
diagnostic), whose *normal* beats are themselves far from its median beat (atrial flutter and fibrillation
reshape them), so an absolute distance cannot tell its premature N and S beats from V. Dividing each distance
(1 − correlation or RMS, whole beat and ±100 ms, and the two template-difference sizes) by the wearer's median of
it asks instead "how unusual is this beat *for this wearer*". The idea came from a DS2 error analysis, so only
DS1 may decide: the same fixed halves as `bench/fl_additive.py`, both ways, VEB F1 of

- scikit-learn's class-balanced gradient-boosted trees (the trees' stand-in), and
- the additive model (`shared.fl.gam`, 30 epochs, 16 bins) without DP and with sample-level DP at ε = 8,

on five feature sets: the 22 named features; with the 6 ratios added; with the 6 distances replaced by their
ratios; the 63 features (with the beat window); those with the ratios added.

    .venv/bin/python bench/_relative_distances.py

Writes bench/results/fl_relative_distances.json. DS2 is never read here. About 10 min here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import ds1_halves, load_mitdb_split, veb_f1, write_result

DISTANCES = ("corr_median", "rms_median", "corr_median_qrs", "rms_median_qrs", "template_diff_rms",
             "template_diff_qrs_max")
NAMED = 22
WINDOW = 41  # the beat-window samples after the named features
EPSILONS = (float("inf"), 8.0)


def relative(table: np.ndarray) -> np.ndarray:
    """(n, 6): each distance (correlations already as 1 − c) over the wearer's median of it."""
    from shared.model.tree_features import FEATURE_NAMES

    out = []
    for name in DISTANCES:
        d = table[:, FEATURE_NAMES.index(name)]
        median = float(np.nanmedian(d)) if np.isfinite(d).any() else np.nan
        out.append(d / max(median, 1e-3))
    return np.column_stack(out)


def _tables(split: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per record: the 22 named features, the 6 ratios, the 41 window samples (69 columns); labelled beats."""
    from shared.model.tree_features import as_distances, record_features

    out = {}
    for record, beats in sorted(split.items()):
        table = as_distances(record_features(beats))
        keep = (beats.y >= 0) & (beats.y < 4)
        table = np.column_stack([table[:, :NAMED], relative(table), table[:, NAMED:]])
        out[record] = (table[keep], beats.y[keep].astype(np.int64))
    return out


def feature_sets() -> dict[str, list[int]]:
    from shared.model.tree_features import FEATURE_NAMES

    ratios = list(range(NAMED, NAMED + len(DISTANCES)))
    window = list(range(NAMED + len(DISTANCES), NAMED + len(DISTANCES) + WINDOW))
    named = list(range(NAMED))
    return {"22 named": named, "22 named + 6 ratios": named + ratios,
            "22 named, distances as ratios": [i for i in named if FEATURE_NAMES[i] not in DISTANCES] + ratios,
            "63 (with the window)": named + window, "63 + 6 ratios": named + ratios + window}


def _predict(kind: str, train: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray) -> np.ndarray:
    """`kind`'s predictions for `X`, fitted on `train` (one (features, labels) per record: a wearer each)."""
    if kind == "trees":
        from sklearn.ensemble import HistGradientBoostingClassifier

        pooled = (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]))
        return np.asarray(HistGradientBoostingClassifier(class_weight="balanced", random_state=0).fit(*pooled)
                          .predict(X))
    from shared.fl.gam import FederatedGam, GamClient, GamConfig, calibrate, fine_bins
    from shared.fl.trees import FixedPointSum

    epsilon = float(kind.split("ε ")[1])
    config = GamConfig(epochs=30, n_bins=16, learning_rate=0.5, seed=0, noise_seed=0)
    if np.isfinite(epsilon):
        config = calibrate(config, X.shape[1], epsilon, delta=1e-5)
    return np.asarray(FederatedGam(config, aggregate=FixedPointSum(8000.0)).fit(
        [GamClient(fine_bins(x), y) for x, y in train]).raw(X).argmax(axis=1))


def main() -> None:
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    tables = _tables(load_mitdb_split("DS1"))
    a, b = ds1_halves(list(tables))
    kinds = ["trees", *(f"additive, ε {e:g}" for e in EPSILONS)]
    scores: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for kind in kinds:
        for name, columns in feature_sets().items():
            f1 = []
            for train, test in ((a, b), (b, a)):
                fit_on = [(tables[r][0][:, columns], tables[r][1]) for r in train]
                y = np.concatenate([tables[r][1] for r in test])
                f1.append(veb_f1(y, _predict(kind, fit_on, np.concatenate([tables[r][0][:, columns] for r in test]))))
            scores.setdefault(kind, {})[name] = {"veb_f1": round(float(np.mean(f1)), 4),
                                                 "halves": [round(float(f), 4) for f in f1]}
            print(f"[{time.perf_counter() - started:.0f} s] {kind}, {name}: VEB F1 {np.mean(f1):.4f}",
                  file=sys.stderr, flush=True)
    table = [(f"{kind}: {name}", f"VEB F1 {s['veb_f1']:.4f} (halves {s['halves'][0]:.3f} / {s['halves'][1]:.3f})")
             for kind, by_set in scores.items() for name, s in by_set.items()]
    write_result("fl_relative_distances", {
        "protocol": "DS1's two fixed halves (bench._common.ds1_halves), each way; mean VEB F1",
        "distances": list(DISTANCES), "scores": scores, "seconds": round(time.perf_counter() - started, 1)}, table)


if __name__ == "__main__":
    main()
