"""Which class weighting balances VEB Se and +P best? Patient-wise 2-fold cross-validation inside DS1 only
(DS2 stays untouched for the real test). Not run by `make bench` (leading underscore).

    .venv/bin/python bench/_weighting_cv.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from bench._common import cv_model, ds1_halves, load_mitdb_split
from shared.model.train import Weighting, as_beatset, class_weights, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds1 = load_mitdb_split("DS1")
    folds = list(ds1_halves(list(ds1)))
    balanced = class_weights(as_beatset(ds1).y, "balanced")
    schemes: dict[str, Weighting] = {"sqrt": "sqrt", "fourth root": [float(x) for x in balanced ** 0.25],
                                     "none": "none"}
    for label, weighting in schemes.items():
        for f in range(2):
            model = cv_model([ds1[n] for n in folds[f]], seed=0, epochs=args.epochs, weighting=weighting)
            e = evaluate(model, [ds1[n] for n in folds[1 - f]])
            v, s = e["per_class"]["V"], e["per_class"]["S"]
            print(f"{label:12s} fold {f}: macro-F1 {e['macro_f1']:.4f}  VEB {v['se']}/{v['ppv']}  "
                  f"SVEB {s['se']}/{s['ppv']}", flush=True)


if __name__ == "__main__":
    main()
