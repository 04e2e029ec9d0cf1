"""delta, clip_by_l2/l1, apply_update, FedProx term."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shared.fl.fedprox import proximal_gradient, proximal_term
from shared.fl.updates import apply_update, clip_by_l1, clip_by_l2, delta

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_delta_and_apply_are_inverse() -> None:
    old, new = np.array([1.0, 2.0]), np.array([1.5, 1.0])
    d = delta(new, old)
    np.testing.assert_allclose(d, [0.5, -1.0])
    np.testing.assert_allclose(apply_update(old, d), new)
    np.testing.assert_allclose(apply_update(old, d, server_lr=0.5), [1.25, 1.5])
    with pytest.raises(ValueError):
        delta(np.zeros(2), np.zeros(3))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 50), elements=finite), st.floats(1e-3, 1e3))
def test_clip_by_l2(vec: np.ndarray, clip: float) -> None:
    out, norm = clip_by_l2(vec, clip)
    assert norm == pytest.approx(float(np.linalg.norm(vec)))
    assert np.linalg.norm(out) <= clip * (1 + 1e-9)
    if norm <= clip:
        np.testing.assert_array_equal(out, vec)
    else:
        np.testing.assert_allclose(out * norm / clip, vec, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 50), elements=finite), st.floats(1e-3, 1e3))
def test_clip_by_l1(vec: np.ndarray, clip: float) -> None:
    out, norm = clip_by_l1(vec, clip)
    assert norm == pytest.approx(float(np.abs(vec).sum()))
    assert np.abs(out).sum() <= clip * (1 + 1e-9)


def test_clip_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        clip_by_l2([1.0], 0.0)
    with pytest.raises(ValueError):
        clip_by_l2([np.nan], 1.0)


def test_fedprox_gradient_matches_finite_difference() -> None:
    rng = np.random.default_rng(0)
    w, g = rng.normal(size=5), rng.normal(size=5)
    mu, eps = 0.1, 1e-6
    numeric = np.array(
        [(proximal_term(w + eps * e, g, mu) - proximal_term(w - eps * e, g, mu)) / (2 * eps) for e in np.eye(5)]
    )
    np.testing.assert_allclose(proximal_gradient(w, g, mu), numeric, rtol=1e-6)
    assert proximal_term(g, g, mu) == 0.0
