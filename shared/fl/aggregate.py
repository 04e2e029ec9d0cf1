"""Server-side aggregation: mean of a decrypted sum, FedAvg weights, FedBuff staleness weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def aggregate_mean(sum_vector: npt.ArrayLike, count: int) -> FloatArray:
    """Σ updates / count: the coordinator only ever sees the sum, so the mean is this division."""
    if count < 1:
        raise ValueError("count must be >= 1")
    return np.asarray(sum_vector, dtype=np.float64) / count


def fedavg_weights(num_examples: Sequence[int]) -> FloatArray:
    """n_k / Σ n (FedAvg, McMahan et al. 2017, arXiv 1602.05629). Under secure aggregation a client
    applies its own weight before encrypting (weight × update, with n_k ≤ a public cap so the weighted
    update still respects the clip); the server then divides the sum by Σ n.
    """
    n = np.asarray(num_examples, dtype=np.float64)
    if n.size == 0 or np.any(n < 0) or n.sum() <= 0:
        raise ValueError("num_examples must be non-negative with a positive total")
    return n / n.sum()


def weighted_average(vectors: Sequence[npt.ArrayLike], weights: Sequence[float]) -> FloatArray:
    """Σ w_k · v_k / Σ w_k (plaintext FedAvg; used where updates are not encrypted, e.g. tests, simulation)."""
    if len(vectors) != len(weights) or not vectors:
        raise ValueError("need one weight per vector, and at least one vector")
    w = np.asarray(weights, dtype=np.float64)
    if np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative with a positive total")
    stacked = np.stack([np.asarray(v, dtype=np.float64) for v in vectors])
    return np.tensordot(w / w.sum(), stacked, axes=1)


def staleness_weight(staleness: int, *, exponent: float = 0.5) -> float:
    """FedBuff (Nguyen et al. 2022) down-weighting of an update trained on a model `staleness` versions old:
    1 / (1 + staleness)^exponent, i.e. 1/sqrt(1 + staleness) by default.
    """
    if staleness < 0:
        raise ValueError("staleness must be >= 0")
    return 1.0 / math.pow(1.0 + staleness, exponent)
