"""Privacy spent across FL rounds: RDP for Gaussian rounds (dp-accounting), basic/advanced composition for Laplace.

Neighbouring relation: add or remove one client's whole update (user-level DP), so the sensitivity
of the sum is the clip norm. `sampling_probability` < 1 claims amplification by Poisson sampling of
clients: only valid if the coordinator really samples each client independently with that
probability and keeps who was sampled secret; otherwise leave it at 1 (plain composition).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import dp_accounting
from dp_accounting.rdp import RdpAccountant


@dataclass(frozen=True)
class GaussianRounds:
    """Each round releases sum + N(0, σ²) with σ = noise_multiplier × L2 clip."""

    noise_multiplier: float
    sampling_probability: float = 1.0

    def __post_init__(self) -> None:
        if not self.noise_multiplier > 0:
            raise ValueError("noise_multiplier must be positive")
        _check_probability(self.sampling_probability)


@dataclass(frozen=True)
class LaplaceRounds:
    """Each round releases sum + Laplace(b) with ε = L1 clip / b (pure DP per release)."""

    epsilon: float
    sampling_probability: float = 1.0

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError("epsilon must be positive")
        _check_probability(self.sampling_probability)


Mechanism = GaussianRounds | LaplaceRounds


def privacy_spent(mechanism: Mechanism, rounds: int, *, target_delta: float) -> tuple[float, float]:
    """(ε_total, δ) after `rounds` releases.

    Gaussian: RDP accountant (Mironov 2017) over the (Poisson-sampled) Gaussian event, converted at
    `target_delta`. Laplace: per-round ε (amplified by sampling: ln(1 + q(e^ε − 1))), then the smaller of
    basic composition (T·ε, δ = 0) and advanced composition (Dwork, Rothblum, Vadhan 2010) at `target_delta`.
    """
    if rounds < 0:
        raise ValueError("rounds must be >= 0")
    if not 0 < target_delta < 1:
        raise ValueError("target_delta must be in (0, 1)")
    if rounds == 0:
        return 0.0, 0.0
    if isinstance(mechanism, GaussianRounds):
        event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(mechanism.noise_multiplier)
        if mechanism.sampling_probability < 1:
            event = dp_accounting.PoissonSampledDpEvent(mechanism.sampling_probability, event)
        accountant = RdpAccountant()
        accountant.compose(event, rounds)
        return float(accountant.get_epsilon(target_delta)), target_delta
    eps = math.log1p(mechanism.sampling_probability * math.expm1(mechanism.epsilon))
    basic = rounds * eps
    advanced = eps * math.sqrt(2 * rounds * math.log(1 / target_delta)) + rounds * eps * math.expm1(eps)
    return (basic, 0.0) if basic <= advanced else (advanced, target_delta)


class PrivacyAccountant:
    """Ledger of released rounds; each round id is spent once (a re-run round needs a new id, it is a new release)."""

    def __init__(self, mechanism: Mechanism, *, target_delta: float) -> None:
        self.mechanism = mechanism
        self.target_delta = target_delta
        self._rounds: list[int] = []

    @property
    def rounds(self) -> tuple[int, ...]:
        return tuple(self._rounds)

    def spend(self, round_number: int) -> tuple[float, float]:
        """Record the release of `round_number`; return the cumulative (ε, δ) including it."""
        if round_number in self._rounds:
            raise ValueError(f"round {round_number} already spent")
        total = privacy_spent(self.mechanism, len(self._rounds) + 1, target_delta=self.target_delta)
        self._rounds.append(round_number)
        return total

    def spent(self) -> tuple[float, float]:
        """Cumulative (ε, δ) so far, without spending."""
        return privacy_spent(self.mechanism, len(self._rounds), target_delta=self.target_delta)


def _check_probability(q: float) -> None:
    if not 0 < q <= 1:
        raise ValueError("sampling_probability must be in (0, 1]")


def smallest_multiplier(spent: Callable[[float], float], epsilon: float, *, low: float = 0.05, high: float = 1000.0,
                        steps: int = 50) -> float:
    """The smallest noise multiplier z in [low, high] with `spent(z)` ≤ ε (ε falls as z grows): a geometric
    bisection, `high` returned when even `low` stays within ε."""
    for _ in range(steps):
        mid = (low * high) ** 0.5
        low, high = (mid, high) if spent(mid) > epsilon else (low, mid)
    return high


def gaussian_noise_multiplier(epsilon: float, rounds: int, *, sampling_probability: float = 1.0,
                              target_delta: float) -> float:
    """The smallest noise multiplier whose `rounds` (Poisson-sampled) Gaussian releases stay within (ε, δ)."""
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")

    def spent(z: float) -> float:
        return privacy_spent(GaussianRounds(z, sampling_probability), rounds, target_delta=target_delta)[0]

    if spent(1000.0) > epsilon:
        raise ValueError(f"ε = {epsilon} is out of reach in {rounds} rounds")
    return smallest_multiplier(spent, epsilon)
