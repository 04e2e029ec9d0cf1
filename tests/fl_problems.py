"""Synthetic labelled feature tables for the federated beat models' tests: four features, four classes (the beat
classes' shape), so the in-process trainers and their release rounds over the bus learn the same problems."""

from __future__ import annotations

import numpy as np

FEATURES = 4


def additive_problem(seed: int, n: int, *, missing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 when feature 0 is high, class 2 when feature 1 is low, class 3 rare: additive log-odds; with
    `missing`, 3 % of feature 3 is NaN (missing values have their own bin)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, FEATURES))
    y = np.zeros(n, dtype=np.int64)
    y[X[:, 0] > 0.8] = 1
    y[X[:, 1] < -1.0] = 2
    y[(X[:, 2] > 1.8) & (y == 0)] = 3
    if missing:
        X[rng.random(n) < 0.03, 3] = np.nan
    return X, y


def xor_problem(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 2 where exactly one of features 0 and 1 is high (an XOR: no sum of per-feature shapes gets it),
    class 1 where feature 2 is high, 3 rare; feature 3 is noise with missing values."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, FEATURES))
    y = np.zeros(n, dtype=np.int64)
    y[(X[:, 0] > 0) ^ (X[:, 1] > 0)] = 2
    y[(X[:, 2] > 1.2) & (y == 0)] = 1
    y[(X[:, 2] < -2.0) & (y == 0)] = 3
    X[rng.random(n) < 0.03, 3] = np.nan
    return X, y
