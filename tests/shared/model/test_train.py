"""Training decreases loss, is deterministic, handles imbalance; metrics are exact on a hand-made confusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.model.data import BeatSet
from shared.model.net import BeatNet, abnormal_score
from shared.model.serialize import parameters_vector
from shared.model.train import (
    class_weights,
    ec57_statistics,
    evaluate,
    finetune_head,
    metrics,
    metrics_from_confusion,
    threshold_for_sensitivity,
    train_local,
)
from tests.shared.model.conftest import TINY


def test_tiny_training_decreases_loss(tiny_model: BeatNet, toy: BeatSet) -> None:
    before = evaluate(tiny_model, toy)["macro_f1"]
    result = train_local(tiny_model, toy, epochs=6, batch_size=16, lr=1e-2, seed=1)
    assert result.n == len(toy) - 3  # Q and unmatched dropped
    assert result.epoch_losses[-1] < 0.7 * result.epoch_losses[0]
    assert evaluate(tiny_model, toy)["macro_f1"] > before


def test_training_is_deterministic(toy: BeatSet) -> None:
    vecs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = BeatNet(TINY)
        train_local(model, toy, epochs=1, batch_size=16, seed=5, max_beats=100)
        vecs.append(parameters_vector(model))
    np.testing.assert_array_equal(vecs[0], vecs[1])


def test_fedprox_keeps_parameters_closer(toy: BeatSet) -> None:
    def drift(mu: float) -> float:
        torch.manual_seed(0)
        model = BeatNet(TINY)
        start = parameters_vector(model)
        train_local(model, toy, epochs=2, batch_size=16, lr=1e-2, mu=mu, seed=0)
        return float(np.linalg.norm(parameters_vector(model) - start))

    assert drift(1.0) < drift(0.0)


def test_class_weights() -> None:
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, "balanced")
    assert w[0] * 90 == pytest.approx(w[1] * 10) and w[2] == 0 and w[3] == 0
    assert class_weights(y, "none").tolist() == [1, 1, 1, 1]
    assert class_weights(y, [1, 2, 3, 4]).tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError):
        class_weights(y, "bogus")


def test_metrics_on_hand_made_confusion() -> None:
    cm = np.array([
        [80, 5, 5, 0],  # N: 90 true
        [2, 8, 0, 0],  # S: 10 true
        [1, 0, 18, 1],  # V: 20 true
        [0, 0, 0, 0],  # F: none
    ])
    m = metrics_from_confusion(cm, auroc=0.9)
    assert set(m) == {"per_class", "macro_f1", "auroc", "beats", "ec57", "confusion"}
    assert m["confusion"] == cm.tolist()
    assert list(m["per_class"]) == ["N", "S", "V", "F"]
    assert m["per_class"]["N"] == {"se": round(80 / 90, 4), "ppv": round(80 / 83, 4)}
    assert m["per_class"]["S"] == {"se": 0.8, "ppv": round(8 / 13, 4)}
    assert m["per_class"]["V"] == {"se": 0.9, "ppv": round(18 / 23, 4)}
    assert m["per_class"]["F"] == {"se": None, "ppv": 0.0}  # predicted once, never true
    f1 = [2 * 80 / 173, 2 * 8 / 23, 2 * 18 / 43, 0.0]
    assert m["macro_f1"] == pytest.approx(np.mean(f1), abs=1e-4)
    assert m["beats"] == 120 and m["auroc"] == 0.9


def test_ec57_statistics_do_not_count_fusion_called_v() -> None:
    """EC57 (WFDB bxb): VEB FP = Nv + Sv; an F beat called V is neither TP nor FP, nor a true negative."""
    cm = np.array([
        [900, 10, 6, 4],  # N
        [5, 40, 4, 1],  # S
        [3, 2, 90, 5],  # V
        [7, 0, 20, 3],  # F: 20 fusion beats called V
    ])
    e = ec57_statistics(cm)
    assert e["veb"]["se"] == 0.9  # 90 / (90 + 3 + 2 + 5): as per_class
    assert e["veb"]["ppv"] == round(90 / (90 + 6 + 4), 4)  # the 20 Fv left out
    tn = 900 + 10 + 4 + 5 + 40 + 1 + 7 + 0 + 3
    assert e["veb"]["fpr"] == round(10 / (tn + 10), 4)
    assert e["sveb"] == {"se": 0.8, "ppv": round(40 / 52, 4)}
    strict = metrics_from_confusion(cm, auroc=None)["per_class"]["V"]
    assert strict["ppv"] == round(90 / 120, 4) < e["veb"]["ppv"]
    # nothing called V: +P undefined, not zero
    assert ec57_statistics(np.diag([5, 5, 0, 5]))["veb"] == {"se": None, "ppv": None, "fpr": 0.0}
    # the O row (extra detections), Q beats and the detector's misses, as bxb counts them
    full = ec57_statistics(cm, extra_called=np.array([3, 2, 7, 1]), q_called=np.array([1, 3, 4, 0]),
                           missed=np.array([2, 6, 10, 0]))
    assert full["veb"]["se"] == round(90 / (100 + 10), 4)  # missed V beats are false negatives
    assert full["veb"]["ppv"] == round(90 / (90 + 6 + 4 + 7), 4)  # extra detections called V are FP, Q called V not
    # Q beats and extra detections not called V are true negatives (1 + 3, and 3 + 2 + 1)
    assert full["veb"]["fpr"] == round(17 / (tn + 4 + 6 + 17), 4)
    # SVEB: missed S are FN; extra detections called S are FP, Q beats called S are not
    assert full["sveb"] == {"se": round(40 / 56, 4), "ppv": round(40 / 54, 4)}


def test_metrics_counts_extra_detections_and_q_beats_only_in_ec57() -> None:
    y = np.array([0, 0, 2, 2, -1, -1, 4])  # N N V V, two unmatched detections, one Q beat
    pred = np.array([0, 0, 2, 2, 2, 0, 2])
    m = metrics(y, pred, np.array([0.1, 0.2, 0.9, 0.8, 0.9, 0.1, 0.9]), missed=np.array([0, 0, 1, 0]))
    assert m["beats"] == 4 and m["per_class"]["V"] == {"se": 1.0, "ppv": 1.0}
    assert m["confusion"] == [[2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]
    assert m["ec57"]["veb"]["se"] == round(2 / 3, 4) and m["ec57"]["veb"]["ppv"] == round(2 / 3, 4)
    assert m["ec57"]["veb"]["fpr"] == round(1 / 4, 4)  # TN: the two N beats and the extra detection called N
    assert m["ec57"]["sveb"] == {"se": None, "ppv": None}
    assert m["auroc"] == 1.0


def test_metrics_from_labels_and_auroc() -> None:
    y = np.array([0, 0, 0, 1, 2, 3])
    pred = np.array([0, 0, 1, 1, 2, 0])
    score = np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.25])  # one abnormal (0.25) below one normal (0.3)
    m = metrics(y, pred, score)
    assert m["auroc"] == pytest.approx(8 / 9, abs=1e-4)
    assert m["per_class"]["F"] == {"se": 0.0, "ppv": None}
    assert m["beats"] == 6


def test_evaluate_shape(tiny_model: BeatNet, toy: BeatSet) -> None:
    m = evaluate(tiny_model, {"a": toy, "b": toy})
    assert m["beats"] == 2 * (len(toy) - 3)
    assert all(set(v) == {"se", "ppv"} for v in m["per_class"].values())
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    assert float(abnormal_score(logits)) == pytest.approx(1 - float(torch.softmax(logits, 1)[0, 0]))


def test_threshold_for_sensitivity(tiny_model: BeatNet, toy: BeatSet) -> None:
    train_local(tiny_model, toy, epochs=3, batch_size=16, lr=1e-2)
    t = threshold_for_sensitivity(tiny_model, toy, target_se=0.9)
    from shared.model.train import as_beatset, predict

    beats = as_beatset(toy)
    _, score = predict(tiny_model, beats)
    assert np.mean(score[beats.y != 0] >= t) >= 0.9
    normal_only = beats.subset(np.flatnonzero(beats.y == 0))
    assert threshold_for_sensitivity(tiny_model, normal_only, default=0.42) == 0.42


def test_finetune_head_changes_only_the_head(tiny_model: BeatNet, toy: BeatSet) -> None:
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    result = finetune_head(tiny_model, toy, epochs=2, lr=1e-2)
    assert result.n == len(toy) - 3
    after = tiny_model.state_dict()
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        assert changed == key.startswith("head."), key
    assert all(p.requires_grad for p in tiny_model.parameters())
