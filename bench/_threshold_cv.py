"""Would a V decision threshold (call V only when p(V) ≥ τ, else the next most likely class) buy VEB +P
without losing more Se? Patient-wise 2-fold cross-validation inside DS1 only (the halves of
`bench/_weighting_cv.py`; DS2 stays untouched), centralized BeatNet, sqrt class weighting. Not run by
`make bench` (leading underscore).

    .venv/bin/python bench/_threshold_cv.py [--epochs 4] [--seeds 0,1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench._common import cv_arguments, cv_model, ds1_halves, load_mitdb_split
from shared.model.train import as_beatset, metrics

V = 2
TAUS = (0.5, 0.6, 0.7, 0.8, 0.9)


def decide(p: np.ndarray, tau: float) -> np.ndarray:
    """Argmax, except that a V call below `tau` falls to the next most likely class."""
    pred = p.argmax(1)
    others = p.copy()
    others[:, V] = -1.0
    return np.where((pred == V) & (p[:, V] < tau), others.argmax(1), pred)


def main() -> None:
    args = cv_arguments(__doc__)
    ds1 = load_mitdb_split("DS1")
    folds = list(ds1_halves(list(ds1)))
    f1: dict[float, list[float]] = {tau: [] for tau in TAUS}
    for seed in (int(s) for s in args.seeds.split(",")):
        for f in range(2):
            model = cv_model([ds1[n] for n in folds[f]], seed=seed, epochs=args.epochs)
            test = as_beatset([ds1[n] for n in folds[1 - f]])
            with torch.no_grad():
                p = torch.softmax(model(torch.from_numpy(test.X_wave), torch.from_numpy(test.X_rr)), 1).numpy()
            for tau in TAUS:
                m = metrics(test.y, decide(p, tau), 1.0 - p[:, 0])
                v = m["per_class"]["V"]
                se, ppv = v["se"] or 0.0, v["ppv"] or 0.0
                f1[tau].append(0.0 if se + ppv == 0 else 2 * se * ppv / (se + ppv))
                print(f"seed {seed} fold {f} τ {tau:.2f}: VEB Se {se:.3f} +P {ppv:.3f}  macro-F1 {m['macro_f1']:.4f}",
                      flush=True)
    for tau in TAUS:
        print(f"τ {tau:.2f}: mean VEB F1 {np.mean(f1[tau]):.4f}")


if __name__ == "__main__":
    main()
