"""Privacy accounting across rounds: RDP for Gaussian, basic/advanced composition for Laplace."""

from __future__ import annotations

import math

import pytest
from dp_accounting import get_epsilon_gaussian

from shared.fl.accounting import GaussianRounds, LaplaceRounds, PrivacyAccountant, privacy_spent

DELTA = 1e-5


def test_gaussian_grows_with_rounds_and_shrinks_with_sampling() -> None:
    full = [privacy_spent(GaussianRounds(1.1), t, target_delta=DELTA)[0] for t in (1, 10, 100)]
    assert full[0] < full[1] < full[2]
    sampled = privacy_spent(GaussianRounds(1.1, sampling_probability=0.1), 100, target_delta=DELTA)[0]
    assert sampled < full[2]
    # RDP→(ε, δ) is a valid upper bound: never below the exact one-shot analytic ε, and not far above it
    exact = get_epsilon_gaussian(1.1, DELTA)
    assert exact <= full[0] < 1.5 * exact


def test_laplace_basic_then_advanced() -> None:
    eps, delta = privacy_spent(LaplaceRounds(0.5), 10, target_delta=DELTA)
    assert (eps, delta) == (pytest.approx(5.0), 0.0)
    eps_many, delta_many = privacy_spent(LaplaceRounds(0.05), 10_000, target_delta=DELTA)
    assert delta_many == DELTA and eps_many < 10_000 * 0.05
    amplified = privacy_spent(LaplaceRounds(0.5, sampling_probability=0.2), 1, target_delta=DELTA)[0]
    assert amplified == pytest.approx(math.log1p(0.2 * math.expm1(0.5)))


def test_accountant_spends_each_round_once() -> None:
    acct = PrivacyAccountant(LaplaceRounds(0.5), target_delta=DELTA)
    assert acct.spent() == (0.0, 0.0)
    assert acct.spend(1) == (pytest.approx(0.5), 0.0)
    assert acct.spend(2) == (pytest.approx(1.0), 0.0)
    with pytest.raises(ValueError):
        acct.spend(2)
    assert acct.rounds == (1, 2) and acct.spent() == (pytest.approx(1.0), 0.0)
    gauss = PrivacyAccountant(GaussianRounds(2.0), target_delta=DELTA)
    assert gauss.spend(1)[1] == DELTA


def test_noise_multiplier_is_the_smallest_that_stays_within_epsilon() -> None:
    from shared.fl.accounting import gaussian_noise_multiplier

    z = gaussian_noise_multiplier(8.0, 300, sampling_probability=0.09, target_delta=1e-5)
    spent = privacy_spent(GaussianRounds(z, 0.09), 300, target_delta=1e-5)[0]
    assert spent <= 8.0
    assert privacy_spent(GaussianRounds(z * 0.98, 0.09), 300, target_delta=1e-5)[0] > 8.0
    assert gaussian_noise_multiplier(1.0, 300, sampling_probability=0.09, target_delta=1e-5) > z
    with pytest.raises(ValueError, match="positive"):
        gaussian_noise_multiplier(0.0, 10, target_delta=1e-5)
