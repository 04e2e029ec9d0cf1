"""When a watch should run the smaller variant of its beat model, and when it may go back: a pure policy.

A window's latency is the model's inference time for the beats classified in one second of signal
(`LearnedDetector` measures it); the budget is what the watch may spend on it (100 ms by default, a
tenth of the second the window covers, so the model cannot starve the rest of the device).

Hysteresis both ways, so a single slow window (a garbage collection, another app's burst) does not
switch, and a machine at the edge of its budget does not flap:

* full → small after `over_windows` consecutive windows over budget;
* small → full after `recover_windows` consecutive windows in which the full model is *predicted* to
  take at most `recover_fraction` of the budget. The watch is not running the full model then, so the
  prediction is the small variant's measured latency divided by `relative_cost` (the small variant's
  cost as a fraction of the full one's, measured when the small one was built). Predicting from the
  ratio instead of probing the full model costs nothing while the device is overloaded; the price is
  that the ratio was measured on another CPU: `recover_fraction` = 0.5 leaves room for it being off by 2×.

A window in which no beat was classified says nothing about speed and is ignored: it neither extends
nor breaks a streak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Variant = Literal["full", "small"]


@dataclass(frozen=True)
class VariantSwitch:
    """One switch: to which variant, why, after which window (1-based count of timed windows)."""

    to: Variant
    reason: str
    window: int
    latency_ms: float

    @property
    def previous(self) -> Variant:
        return "full" if self.to == "small" else "small"


@dataclass
class VariantPolicy:
    """Fed each window's measured inference latency (ms); returns a `VariantSwitch` when the variant changes."""

    budget_ms: float = 100.0
    over_windows: int = 3
    recover_fraction: float = 0.5
    recover_windows: int = 10
    relative_cost: float = 1.0  # small variant's cost / full's; 1.0 (no saving assumed) is the cautious default
    variant: Variant = "full"
    windows: int = 0
    _over: int = field(default=0, repr=False)
    _fit: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.budget_ms <= 0 or self.over_windows < 1 or self.recover_windows < 1:
            raise ValueError("budget_ms must be > 0 and over_windows, recover_windows ≥ 1")
        if not 0 < self.recover_fraction <= 1 or not 0 < self.relative_cost <= 1:
            raise ValueError("recover_fraction and relative_cost must be in (0, 1]")

    def predicted_full_ms(self, latency_ms: float) -> float:
        """What the full model would have taken for a window in which the current variant took `latency_ms`."""
        return latency_ms if self.variant == "full" else latency_ms / self.relative_cost

    def observe(self, latency_ms: float) -> VariantSwitch | None:
        """One timed window; the switch it causes, if any."""
        self.windows += 1
        if self.variant == "full":
            self._over = self._over + 1 if latency_ms > self.budget_ms else 0
            if self._over >= self.over_windows:
                return self._switch("small", f"inference {latency_ms:.1f} ms per window, over the "
                                    f"{self.budget_ms:g} ms budget for {self._over} windows in a row", latency_ms)
            return None
        predicted = self.predicted_full_ms(latency_ms)
        self._fit = self._fit + 1 if predicted <= self.recover_fraction * self.budget_ms else 0
        if self._fit >= self.recover_windows:
            return self._switch("full", f"small variant at {latency_ms:.1f} ms per window predicts the full model "
                                f"at {predicted:.1f} ms, within {self.recover_fraction:g} of the {self.budget_ms:g} "
                                f"ms budget for {self._fit} windows in a row", latency_ms)
        return None

    def _switch(self, to: Variant, reason: str, latency_ms: float) -> VariantSwitch:
        self.variant = to
        self._over = self._fit = 0
        return VariantSwitch(to, reason, self.windows, round(latency_ms, 3))
