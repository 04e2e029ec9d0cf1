"""The model-variant policy: switch to small after N windows over budget, back when the full one is predicted to fit."""

from __future__ import annotations

import pytest

from watch_agent.variants import VariantPolicy


def test_a_few_slow_windows_do_not_switch_three_in_a_row_do() -> None:
    policy = VariantPolicy(budget_ms=100, over_windows=3)
    for latency in (150, 150, 20, 150, 150, 99):  # never three in a row: a burst is not overload
        assert policy.observe(latency) is None
    assert policy.variant == "full"
    assert policy.observe(101) is None and policy.observe(130) is None
    switch = policy.observe(180)
    assert switch is not None and switch.to == "small" and switch.previous == "full"
    assert policy.variant == "small" and switch.window == 9 and switch.latency_ms == 180
    assert "180.0 ms" in switch.reason and "over the 100 ms budget for 3 windows" in switch.reason


def _on_small(**kw: float) -> VariantPolicy:
    policy = VariantPolicy(budget_ms=100, over_windows=1, **kw)  # type: ignore[arg-type]
    assert policy.observe(500) is not None and policy.variant == "small"
    return policy


def test_back_to_full_only_when_the_full_model_is_predicted_to_fit_for_long_enough() -> None:
    policy = _on_small(relative_cost=0.5, recover_fraction=0.5, recover_windows=10)
    # 30 ms on small predicts 60 ms on full: under budget, but not within half of it → stays small
    assert all(policy.observe(30) is None for _ in range(50))
    assert policy.predicted_full_ms(30) == 60
    for _ in range(9):
        assert policy.observe(20) is None  # predicts 40 ms ≤ 50 ms
    assert policy.observe(30) is None  # one window that would not fit restarts the count
    assert all(policy.observe(20) is None for _ in range(9))
    switch = policy.observe(20)
    assert switch is not None and switch.to == "full" and switch.previous == "small" and policy.variant == "full"
    assert "predicts the full model at 40.0 ms" in switch.reason and "10 windows" in switch.reason
    assert policy.predicted_full_ms(30) == 30  # on full, measured is what it costs


def test_without_a_measured_ratio_recovery_assumes_no_saving() -> None:
    policy = _on_small(recover_windows=2)  # relative_cost 1.0
    assert policy.observe(60) is None and policy.observe(60) is None  # 60 ms predicts 60 ms: over half budget
    assert policy.observe(40) is None and policy.observe(40) is not None


def test_streaks_restart_after_a_switch() -> None:
    policy = VariantPolicy(budget_ms=10, over_windows=2, recover_windows=1, relative_cost=0.5)
    assert policy.observe(20) is None and policy.observe(20) is not None
    assert policy.observe(1) is not None and policy.variant == "full"
    assert policy.observe(20) is None  # the over-budget count starts again from zero
    assert policy.observe(20) is not None and policy.windows == 5


@pytest.mark.parametrize("kw", [{"budget_ms": 0}, {"over_windows": 0}, {"recover_windows": 0},
                                {"recover_fraction": 1.5}, {"relative_cost": 0}, {"relative_cost": 2}])
def test_nonsense_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VariantPolicy(**kw)  # type: ignore[arg-type]
