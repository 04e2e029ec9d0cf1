"""Where a saved record-relative beat model's false V calls come from on DS2 — a diagnostic after the fact, never a
choice (issue 15, docs/fl.md): per record, the beats labelled N, S or F that the model calls V; then, for the worst
record, how its false-V beats and its other N beats compare with DS1's V and N beats on the named features
(medians). Nothing here feeds a model or a threshold.

    .venv/bin/python bench/_false_v.py bench/results/model_trees.npz [bench/results/model_additive_dp.npz …]

Prints a table per model; writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import load_mitdb_split

V = 2


def predictor(path: Path) -> Callable[[Any], np.ndarray]:
    """Class probabilities of one recording's beats, for any record-relative model file (trees, additive, forest)."""
    from shared.fl.relative_models import load_relative

    return load_relative(path).predict_beats


def main() -> None:
    from shared.model.tree_features import FEATURE_NAMES, record_features

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="saved .npz beat models (trees, additive or forest)")
    args = parser.parse_args()
    ds1, ds2 = load_mitdb_split("DS1"), load_mitdb_split("DS2")
    ds1_rows = {label: np.concatenate([record_features(s)[s.y == label] for s in ds1.values()]) for label in (0, V)}
    for path in args.models:
        proba_of = predictor(path)
        false_v: dict[str, np.ndarray] = {}
        true_v = 0
        for record, beats in ds2.items():
            called = proba_of(beats).argmax(axis=1) == V
            false_v[record] = called & (beats.y >= 0) & (beats.y < 4) & (beats.y != V)
            true_v += int(np.sum(called & (beats.y == V)))
        total = sum(int(f.sum()) for f in false_v.values())
        ranked = sorted(false_v, key=lambda r: -int(false_v[r].sum()))
        print(f"\n{path}: {true_v} true V calls, {total} false (+P {true_v / max(true_v + total, 1):.1%})")
        print("  false V by record: " + ", ".join(f"{r} {int(false_v[r].sum())}" for r in ranked[:8]))
        worst = ranked[0]
        beats, wrong = ds2[worst], false_v[worst]
        print(f"  record {worst}: its false V beats by label (N S F): "
              f"{np.bincount(beats.y[wrong], minlength=4)[[0, 1, 3]].tolist()}")
        rows = record_features(beats)
        print(f"  {'feature (median)':<24} {worst + ' false V':>12} {worst + ' other N':>12} {'DS1 V':>8} {'DS1 N':>8}")
        for i, name in enumerate(FEATURE_NAMES):
            print(f"  {name:<24} {np.nanmedian(rows[wrong, i]):12.3f} "
                  f"{np.nanmedian(rows[(beats.y == 0) & ~wrong, i]):12.3f} "
                  f"{np.nanmedian(ds1_rows[V][:, i]):8.3f} {np.nanmedian(ds1_rows[0][:, i]):8.3f}")


if __name__ == "__main__":
    main()
