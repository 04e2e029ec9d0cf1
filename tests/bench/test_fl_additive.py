"""The additive-model bench's pieces: the encrypted check sums through real packed Paillier and refuses a
mismatch, the 3-seed summary keeps `evaluate --json`'s shape, and the false-V diagnostic counts what it says."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench import fl_additive as bench
from shared.fl import gam


def _metrics(v_ppv: float, s_ppv: float | None, confusion: list[list[int]] | None = None) -> dict[str, Any]:
    return {"per_class": {"N": {"se": 0.9, "ppv": 0.95}, "S": {"se": 0.1, "ppv": s_ppv},
                          "V": {"se": 0.95, "ppv": v_ppv}, "F": {"se": 0.0, "ppv": None}},
            "macro_f1": 0.5, "auroc": 0.9, "beats": 100, "confusion": confusion or [[2, 0], [1, 3]],
            "ec57": {"veb": {"se": 0.9, "ppv": v_ppv, "fpr": 0.01}, "sveb": {"se": 0.1, "ppv": s_ppv}}}


def test_the_summary_is_the_mean_in_the_evaluate_shape() -> None:
    summary = bench._summary([_metrics(0.8, 0.2), _metrics(0.9, None), _metrics(1.0, 0.4, [[5, 0], [1, 3]])])
    assert summary["per_class"]["V"]["ppv"] == 0.9
    assert summary["per_class"]["S"]["ppv"] == 0.3  # a run that never called S is left out, not counted as 0
    assert summary["per_class"]["F"]["ppv"] is None
    assert summary["ec57"]["veb"]["ppv"] == 0.9 and summary["beats"] == 100
    assert summary["confusion"] == [[3, 0], [1, 3]]  # the runs' mean, rounded


def test_every_verified_release_goes_through_paillier_and_equals_the_fixed_point() -> None:
    from bench._common import PaillierChecked

    verified = PaillierChecked(limit=2, bound=bench.CLIENT_BOUND)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 50, 64) for _ in range(3)]
    out = verified(vectors)
    assert np.allclose(out, np.sum(vectors, axis=0), atol=1e-2)
    verified(vectors)
    verified(vectors)  # past the limit: the fixed point alone
    assert verified.verified == 2 and verified.packed.bytes_sent > 0


def test_false_v_calls_are_counted_per_record() -> None:
    columns = 3
    shapes = np.zeros((columns, 4, 4))
    shapes[0, 2, 2] = 10.0  # coarse bin 2 of feature 0: V
    coarse = np.zeros((columns, gam.FINE_BINS), dtype=np.int64)
    coarse[0, 1:] = 1
    coarse[0, gam.FINE_BINS // 2:] = 2  # positive values of feature 0
    model = gam.GamModel(coarse, shapes, np.ones(4))
    table = np.array([[1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [1.0, 0, 0]])
    ds2 = {"a": (table, np.array([0, 1, 0, 2])), "b": (table[:1], np.array([2]))}
    assert bench._false_v_by_record(model, ds2, columns) == {"a": 2, "b": 0}


def test_the_shape_figure_draws_from_a_model_file(tmp_path: Any) -> None:
    columns = 22
    coarse = np.zeros((columns, gam.FINE_BINS), dtype=np.int64)
    coarse[:, 1:] = np.minimum(1 + np.arange(gam.FINE_BINS - 1) // 32, 7)
    model = gam.GamModel(coarse, np.random.default_rng(0).normal(size=(columns, 8, 4)), np.ones(4))
    gam.save(tmp_path / "m.npz", model, columns, {"epsilon": 8.0, "delta": 1e-5})
    bench.plot_shapes(tmp_path / "m.npz", tmp_path / "shapes.png")
    assert (tmp_path / "shapes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_v_offset_is_the_one_the_held_out_halves_score_best_and_zero_when_none_helps() -> None:
    y = np.array([0] * 90 + [2] * 10)
    raw = np.zeros((100, 4))
    raw[:, 2] = np.r_[np.linspace(-2, 1, 90), np.linspace(0.5, 2, 10)]  # V logits; N at 0
    offset, f1 = bench._v_bias([(raw, y), (raw, y)])
    # the argmax (V when its logit > 0) calls 30 N beats V; N's V logits reach 1.0 and V's start at 0.5, so a
    # negative offset (a higher threshold) trades a few V beats for most of those false calls
    assert -1.0 <= offset < 0 and f1 > bench.veb_f1(y, raw.argmax(axis=1))
    separable = np.zeros((100, 4))
    separable[:, 2] = np.r_[np.full(90, -1.0), np.full(10, 1.0)]
    assert bench._v_bias([(separable, y)]) == (0.0, 1.0)  # already perfect: no offset
