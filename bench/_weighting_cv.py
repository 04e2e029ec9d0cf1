"""Which class weighting balances VEB Se and +P best? Patient-wise 2-fold cross-validation inside DS1 only
(DS2 stays untouched for the real test). Not run by `make bench` (leading underscore).

    .venv/bin/python bench/_weighting_cv.py [--epochs 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from shared.model.data import load_split
from shared.model.net import BeatNet
from shared.model.train import Weighting, as_beatset, class_weights, evaluate, train_local
from shared.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    ds1 = load_split("DS1", settings.mitdb_dir)
    perm = list(np.random.default_rng(0).permutation(sorted(ds1)))
    folds = [perm[:11], perm[11:]]
    balanced = class_weights(as_beatset(ds1).y, "balanced")
    schemes: dict[str, Weighting] = {"sqrt": "sqrt", "fourth root": [float(x) for x in balanced ** 0.25],
                                     "none": "none"}
    for label, weighting in schemes.items():
        for f in range(2):
            torch.manual_seed(0)
            model = BeatNet()
            train_local(model, [ds1[n] for n in folds[f]], epochs=args.epochs, batch_size=64, lr=0.002,
                        class_weighting=weighting, augment=True, seed=0)
            e = evaluate(model, [ds1[n] for n in folds[1 - f]])
            v, s = e["per_class"]["V"], e["per_class"]["S"]
            print(f"{label:12s} fold {f}: macro-F1 {e['macro_f1']:.4f}  VEB {v['se']}/{v['ppv']}  "
                  f"SVEB {s['se']}/{s['ppv']}", flush=True)


if __name__ == "__main__":
    main()
