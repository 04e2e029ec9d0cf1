"""Distributed DP noise: K shares sum to the target distribution (fixed seeds); sigma/scale calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dp_accounting import get_epsilon_gaussian
from scipy import stats

from shared.fl import noise

SAMPLES = 200_000


@pytest.mark.parametrize("clients", [1, 5, 22])
def test_gaussian_shares_sum_to_target_variance(clients: int) -> None:
    rng = np.random.default_rng(1234)
    sigma = 0.8
    total = sum(noise.gaussian_share(SAMPLES, sigma, clients, rng) for _ in range(clients))
    assert float(np.var(total)) == pytest.approx(sigma**2, rel=0.02)
    assert abs(float(np.mean(total))) < 5 * sigma / math.sqrt(SAMPLES)
    assert stats.kstest(total, stats.norm(scale=sigma).cdf).pvalue > 0.01


@pytest.mark.parametrize("clients", [1, 4, 22])
def test_laplace_shares_sum_to_exact_laplace(clients: int) -> None:
    rng = np.random.default_rng(99)
    b = noise.laplace_scale(l1_sensitivity=1.0, epsilon=0.5)
    assert b == 2.0
    shares = [noise.laplace_share(SAMPLES, b, clients, rng) for _ in range(clients)]
    total = np.sum(shares, axis=0)
    assert float(np.var(shares[0])) == pytest.approx(noise.laplace_share_std(b, clients) ** 2, rel=0.05)
    assert float(np.mean(np.abs(total))) == pytest.approx(b, rel=0.02)  # E|Laplace(b)| = b
    assert float(np.var(total)) == pytest.approx(2 * b**2, rel=0.03)
    assert stats.kstest(total, stats.laplace(scale=b).cdf).pvalue > 0.01


def test_analytic_gaussian_is_tight_and_beats_classic() -> None:
    for eps, delta in [(0.5, 1e-5), (0.9, 1e-6)]:
        analytic = noise.analytic_gaussian_sigma(2.0, eps, delta)
        assert analytic < noise.classic_gaussian_sigma(2.0, eps, delta)
        assert get_epsilon_gaussian(analytic / 2.0, delta) == pytest.approx(eps, rel=1e-6)
    assert noise.analytic_gaussian_sigma(1.0, 4.0, 1e-5) > 0  # works for ε ≥ 1 too
    with pytest.raises(ValueError):
        noise.classic_gaussian_sigma(1.0, 2.0, 1e-5)


def test_k_min_calibration_over_delivers_noise() -> None:
    assert noise.aggregate_gaussian_sigma(1.0, calibrated_for=4, reported=4) == 1.0
    assert noise.aggregate_gaussian_sigma(1.0, calibrated_for=4, reported=16) == pytest.approx(2.0)
    assert noise.gaussian_share_std(2.0, 4) == 1.0
    assert noise.quantization_bound(0.05, 0.01) == pytest.approx(0.11)
    with pytest.raises(ValueError):
        noise.gaussian_share(3, 1.0, 0, np.random.default_rng())
