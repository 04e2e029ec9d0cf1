"""Differential-privacy noise for the aggregate, split into per-client shares (distributed DP).

The coordinator only decrypts the sum of K clients, so the (ε, δ) target applies to that sum: each
client adds a share such that the K shares sum to the target noise. Gaussian: K × N(0, σ²/K) = N(0, σ²).
Laplace: Laplace(b) is infinitely divisible — Σ_{k=1..K} [Gamma(1/K, b) − Gamma(1/K, b)] = Laplace(b)
exactly (a Laplace is the difference of two Exp(b) = Gamma(1, b), and Gamma shapes add).

Fewer reporters than planned: shares are calibrated for K_min, the smallest aggregate the cloud will
decrypt. An aggregate of K ≥ K_min clients then carries noise ≥ the target (σ·sqrt(K/K_min), or the
Laplace(b) plus independent extra noise) — adding independent noise is post-processing, so the
guarantee holds for every decryptable aggregate; the price is extra noise when more clients report.
Below K_min the cloud refuses to decrypt, so an under-noised sum is never released. Caveat: clients
colluding with the server can subtract their own shares; calibrate to K_min − t to tolerate t of them.

Randomness: pass `np.random.default_rng()` (seeded from OS entropy). PCG64 is not a CSPRNG; noise is
added before fixed-point quantization, which discards the low-order float bits Mironov's (2012)
floating-point attack reads — similar in spirit to his snapping mechanism, not a proof.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from dp_accounting import get_sigma_gaussian

FloatArray = npt.NDArray[np.float64]
Shape = int | tuple[int, ...]


def classic_gaussian_sigma(l2_sensitivity: float, epsilon: float, delta: float) -> float:
    """σ = Δ₂·sqrt(2 ln(1.25/δ))/ε (Dwork & Roth 2014, Thm A.1; valid only for ε < 1)."""
    _check_eps_delta(epsilon, delta)
    if epsilon >= 1:
        raise ValueError("the classic Gaussian bound holds only for epsilon < 1; use analytic_gaussian_sigma")
    return l2_sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


def analytic_gaussian_sigma(l2_sensitivity: float, epsilon: float, delta: float) -> float:
    """Smallest σ giving (ε, δ)-DP for L2 sensitivity Δ₂ (analytic Gaussian, Balle & Wang 2018), any ε > 0."""
    _check_eps_delta(epsilon, delta)
    return l2_sensitivity * float(get_sigma_gaussian(epsilon, delta))


def laplace_scale(l1_sensitivity: float, epsilon: float) -> float:
    """b = Δ₁/ε: ε-DP (δ = 0) for an L1-clipped sum (clip with `clip_by_l1`)."""
    if not epsilon > 0 or not l1_sensitivity > 0:
        raise ValueError("epsilon and sensitivity must be positive")
    return l1_sensitivity / epsilon


def gaussian_share(shape: Shape, sigma: float, clients: int, rng: np.random.Generator) -> FloatArray:
    """One client's share: N(0, σ²/K), so K shares sum to N(0, σ²)."""
    return rng.normal(0.0, gaussian_share_std(sigma, clients), size=shape)


def laplace_share(shape: Shape, scale: float, clients: int, rng: np.random.Generator) -> FloatArray:
    """One client's share: Gamma(1/K, b) − Gamma(1/K, b), so K shares sum to exactly Laplace(b)."""
    _check_clients(clients)
    return rng.gamma(1.0 / clients, scale, size=shape) - rng.gamma(1.0 / clients, scale, size=shape)


def gaussian_share_std(sigma: float, clients: int) -> float:
    _check_clients(clients)
    if sigma < 0:
        raise ValueError("sigma must be >= 0")
    return sigma / math.sqrt(clients)


def laplace_share_std(scale: float, clients: int) -> float:
    """Std of one Laplace share: the difference of two Gamma(1/K, b) has variance 2b²/K."""
    _check_clients(clients)
    return scale * math.sqrt(2.0 / clients)


def aggregate_gaussian_sigma(sigma: float, *, calibrated_for: int, reported: int) -> float:
    """Actual σ of a sum of `reported` shares each calibrated for `calibrated_for` clients: σ·sqrt(K/K_min)."""
    _check_clients(calibrated_for)
    _check_clients(reported)
    return sigma * math.sqrt(reported / calibrated_for)


def quantization_bound(clip: float, share_std: float, *, tail_stds: float = 6.0) -> float:
    """A packing range c for a clipped update plus its noise share: clip + tail·std.

    A coordinate of an L2- or L1-clipped update is at most `clip`; with 6 stds a Gaussian share leaves
    the range with probability < 2e-9 per coordinate. Range-clipping a noisy value is not covered by
    the post-processing argument, so it must stay this rare (see docs/privacy.md).
    """
    return clip + tail_stds * share_std


def _check_eps_delta(epsilon: float, delta: float) -> None:
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")


def _check_clients(clients: int) -> None:
    if clients < 1:
        raise ValueError("clients must be >= 1")
