"""aggregate_mean, FedAvg weights, FedBuff staleness weight."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from shared.fl.aggregate import aggregate_mean, fedavg_weights, staleness_weight, weighted_average


def test_aggregate_mean() -> None:
    np.testing.assert_allclose(aggregate_mean([3.0, -6.0], 3), [1.0, -2.0])
    with pytest.raises(ValueError):
        aggregate_mean([1.0], 0)


def test_fedavg_weights_and_weighted_average() -> None:
    w = fedavg_weights([10, 30])
    np.testing.assert_allclose(w, [0.25, 0.75])
    np.testing.assert_allclose(weighted_average([np.zeros(2), np.ones(2) * 4], [10, 30]), [3.0, 3.0])
    with pytest.raises(ValueError):
        fedavg_weights([0, 0])
    with pytest.raises(ValueError):
        weighted_average([np.zeros(2)], [1.0, 2.0])


def test_staleness_weight() -> None:
    assert staleness_weight(0) == 1.0
    assert staleness_weight(3) == pytest.approx(0.5)
    assert staleness_weight(8, exponent=1.0) == pytest.approx(1 / 9)
    weights = [staleness_weight(s) for s in range(10)]
    assert all(a > b for a, b in itertools.pairwise(weights))
    assert math.isclose(staleness_weight(15), 0.25)
    with pytest.raises(ValueError):
        staleness_weight(-1)
