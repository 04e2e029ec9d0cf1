"""Client-side update math: the delta a client sends, and its clipping (the DP sensitivity bound)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def delta(new: npt.ArrayLike, old: npt.ArrayLike) -> FloatArray:
    """new − old: the update a client shares instead of its weights."""
    a, b = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return a - b


def clip_by_l2(vector: npt.ArrayLike, clip: float) -> tuple[FloatArray, float]:
    """Scale down to L2 norm ≤ clip (DP-FedAvg, McMahan et al. 2018); returns (clipped, original norm).

    The clip is the L2 sensitivity of the sum under add/remove-one-client, which calibrates Gaussian noise.
    """
    return _clip(vector, clip, ord_=2)


def clip_by_l1(vector: npt.ArrayLike, clip: float) -> tuple[FloatArray, float]:
    """Scale down to L1 norm ≤ clip; returns (clipped, original norm). Laplace noise needs this L1 bound."""
    return _clip(vector, clip, ord_=1)


def _clip(vector: npt.ArrayLike, clip: float, *, ord_: int) -> tuple[FloatArray, float]:
    if not clip > 0:
        raise ValueError("clip must be positive")
    v = np.asarray(vector, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError("vector must be finite")
    norm = float(np.linalg.norm(v.ravel(), ord=ord_))
    if norm <= clip:
        return v.copy(), norm
    return v * (clip / norm), norm


def apply_update(weights: npt.ArrayLike, update: npt.ArrayLike, *, server_lr: float = 1.0) -> FloatArray:
    """weights + server_lr · update: the server step of FedAvg with the averaged delta."""
    w, u = np.asarray(weights, dtype=np.float64), np.asarray(update, dtype=np.float64)
    if w.shape != u.shape:
        raise ValueError(f"shape mismatch: {w.shape} vs {u.shape}")
    return w + server_lr * u
