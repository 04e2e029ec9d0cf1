"""Training and evaluation as pure functions (no bus, no files): what a watch, a server or a script calls.

`train_local` is one client's local update in federated learning (FedProx μ pulls it toward the
global parameters it started from); `finetune_head` is on-device personalisation of the last layer;
`evaluate` gives the AAMI beat metrics in one fixed JSON shape; `threshold_for_sensitivity` picks a
wearer's own alert threshold.

Class imbalance: S and F are 2 % and 1 % of beats. The default `class_weighting="balanced"` weights
the cross-entropy by n / (k · count_c) over the classes present in the local data; "sqrt" uses the
square root of that (milder), "sampler" draws balanced mini-batches instead, "none" turns it off.
Explicit per-class weights (a sequence of 4 floats) let a federation use one global weighting.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from shared.model.data import CLASSES, Q_LABEL, UNMATCHED, BeatSet, class_counts, concat
from shared.model.net import abnormal_score

log = logging.getLogger(__name__)

Data = BeatSet | Iterable[BeatSet] | Mapping[str, BeatSet]
Weighting = str | Sequence[float]


@dataclass(frozen=True)
class TrainResult:
    """`loss`: mean training loss of the last epoch (classification + proximal term); `n`: beats used."""

    loss: float
    n: int
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def as_beatset(data: Data) -> BeatSet:
    """One labelled (N/S/V/F only) BeatSet from a BeatSet, a list of them or a record → BeatSet dict."""
    return whole_beatset(data).labelled()


def whole_beatset(data: Data) -> BeatSet:
    """One BeatSet with every detected beat (Q and unmatched detections too) and the misses summed."""
    if isinstance(data, BeatSet):
        return data
    return concat(data.values() if isinstance(data, Mapping) else data)


def class_weights(y: np.ndarray, weighting: Weighting, n_classes: int = len(CLASSES)) -> np.ndarray:
    """Per-class loss weights for labels `y` (see module docstring)."""
    if not isinstance(weighting, str):
        given = np.asarray(weighting, dtype=np.float32)
        if given.shape != (n_classes,):
            raise ValueError(f"expected {n_classes} class weights, got {given.shape}")
        return given
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    if weighting in ("none", "sampler"):
        return np.ones(n_classes, np.float32)
    present = counts > 0
    w: np.ndarray = np.zeros(n_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    if weighting == "sqrt":
        w = np.sqrt(w)
    elif weighting != "balanced":
        raise ValueError(f"unknown class_weighting {weighting!r}: balanced, sqrt, sampler, none or 4 floats")
    return w.astype(np.float32)


def _fit(model: nn.Module, beats: BeatSet, params: list[nn.Parameter], *, epochs: int, batch_size: int, lr: float,
         mu: float, global_params: Sequence[torch.Tensor] | None, weighting: Weighting, seed: int,
         augment: bool) -> TrainResult:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n = len(beats)
    if n == 0:
        return TrainResult(float("nan"), 0)
    wave = torch.from_numpy(beats.X_wave)
    ctx = torch.from_numpy(beats.X_rr)
    y = torch.from_numpy(beats.y.astype(np.int64))
    weights = torch.from_numpy(class_weights(beats.y, weighting))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    opt = torch.optim.Adam(params, lr=lr)
    anchor = [g.detach().clone() for g in global_params] if global_params is not None else None
    all_params = list(model.parameters())
    sample_p: torch.Tensor | None = None
    if weighting == "sampler":
        counts = np.bincount(beats.y, minlength=len(CLASSES)).astype(np.float64)
        per_beat = 1.0 / counts[beats.y]
        sample_p = torch.from_numpy(per_beat / per_beat.sum())
    epoch_losses: list[float] = []
    model.train()
    for _ in range(epochs):
        if sample_p is not None:
            order = torch.multinomial(sample_p, n, replacement=True, generator=gen)
        else:
            order = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, cb, yb = wave[idx], ctx[idx], y[idx]
            if augment:
                scale = 1.0 + 0.1 * torch.randn(len(idx), 1, 1, generator=gen)
                xb = xb * scale + 0.05 * torch.randn(xb.shape, generator=gen)
            loss = loss_fn(model(xb, cb), yb)
            if mu > 0 and anchor is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(all_params, anchor, strict=True))
                loss = loss + 0.5 * mu * prox
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        epoch_losses.append(total / max(1, seen))
        log.debug("epoch %d/%d loss %.4f (%.1f s)", len(epoch_losses), epochs, epoch_losses[-1],
                  time.perf_counter() - t0)
    model.eval()
    return TrainResult(epoch_losses[-1], n, epoch_losses, time.perf_counter() - t0)


def train_local(
    model: nn.Module,
    data: Data,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-3,
    mu: float = 0.0,
    global_params: Sequence[torch.Tensor] | None = None,
    max_beats: int | None = None,
    class_weighting: Weighting = "balanced",
    seed: int = 0,
    augment: bool = False,
) -> TrainResult:
    """Train all parameters on local N/S/V/F beats (Q and unmatched beats are dropped), in place.

    With `mu > 0` the FedProx proximal term μ/2·‖w − w_global‖² is added; `global_params` default to the
    model's parameters on entry (the global model a client received). `max_beats` caps the beats used
    (a seeded random subset) to bound on-device work. Same seed, same data → same result.
    """
    beats = as_beatset(data)
    if max_beats is not None and len(beats) > max_beats:
        pick = np.sort(np.random.default_rng(seed).choice(len(beats), max_beats, replace=False))
        beats = beats.subset(pick)
    if global_params is None and mu > 0:
        global_params = [p.detach().clone() for p in model.parameters()]
    return _fit(model, beats, list(model.parameters()), epochs=epochs, batch_size=batch_size, lr=lr, mu=mu,
                global_params=global_params, weighting=class_weighting, seed=seed, augment=augment)


def finetune_head(
    model: nn.Module,
    data: Data,
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 1e-3,
    class_weighting: Weighting = "balanced",
    seed: int = 0,
) -> TrainResult:
    """Personalise: train only the final layer (`model.head`) on the wearer's own labelled beats.

    Why only the head: a few hundred of one wearer's beats cannot retrain the feature extractor without
    overfitting, and keeping it frozen keeps the shared representation that the federation learned.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise TypeError("model has no `head` layer to fine-tune")
    frozen = [p for p in model.parameters() if all(p is not q for q in head.parameters())]
    states = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _fit(model, as_beatset(data), list(head.parameters()), epochs=epochs, batch_size=batch_size, lr=lr,
                    mu=0.0, global_params=None, weighting=class_weighting, seed=seed, augment=False)
    finally:
        for p, s in zip(frozen, states, strict=True):
            p.requires_grad_(s)


@torch.no_grad()
def predict(model: nn.Module, beats: BeatSet, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class 0–3, abnormal score) for every beat of `beats` (all of them, labelled or not)."""
    model.eval()
    preds, scores = [], []
    for start in range(0, len(beats), batch_size):
        logits = model(torch.from_numpy(beats.X_wave[start:start + batch_size]),
                       torch.from_numpy(beats.X_rr[start:start + batch_size]))
        preds.append(logits.argmax(1).numpy())
        scores.append(abnormal_score(logits).numpy())
    if not preds:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(preds), np.concatenate(scores)


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 4)


def metrics_from_confusion(
    confusion: np.ndarray,
    auroc: float | None,
    beats: int | None = None,
    *,
    extra_called: np.ndarray | None = None,
    q_called: np.ndarray | None = None,
    missed: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-class Se/+P and macro-F1 from a 4×4 confusion (rows true, columns predicted), and EC57's.

    Se is None for a class with no true beats, +P None for a class never predicted; a class with
    neither is left out of macro-F1, otherwise a missing Se/+P counts as 0 in its F1. The keyword
    counts feed only the EC57 statistics (see `ec57_statistics`).
    """
    cm = np.asarray(confusion, dtype=np.int64)
    per_class: dict[str, dict[str, float | None]] = {}
    f1s: list[float] = []
    for i, name in enumerate(CLASSES):
        tp, true_n, pred_n = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        se, ppv = _ratio(tp, true_n), _ratio(tp, pred_n)
        per_class[name] = {"se": se, "ppv": ppv}
        if true_n == 0 and pred_n == 0:
            continue
        f1s.append(0.0 if tp == 0 else 2 * tp / (true_n + pred_n))
    return {
        "per_class": per_class,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else None,
        "auroc": None if auroc is None else round(float(auroc), 4),
        "beats": int(cm.sum()) if beats is None else beats,
        "ec57": ec57_statistics(cm, extra_called=extra_called, q_called=q_called, missed=missed),
        "confusion": cm.tolist(),
    }


def _counts(values: np.ndarray | None) -> np.ndarray:
    return np.zeros(len(CLASSES), np.int64) if values is None else np.asarray(values, dtype=np.int64)


def ec57_statistics(
    confusion: np.ndarray,
    *,
    extra_called: np.ndarray | None = None,
    q_called: np.ndarray | None = None,
    missed: np.ndarray | None = None,
) -> dict[str, dict[str, float | None]]:
    """VEB and SVEB gross statistics as ANSI/AAMI EC57 defines them: the convention of published results.

    Counted as WFDB's `bxb` (the standard's reference comparator) counts them. Beyond the N/S/V/F
    `confusion`: `extra_called` is what the model called each detection that matched no reference beat
    (EC57's O row), `q_called` what it called the Q beats, `missed` the reference N/S/V/F beats the
    detector never found (the o column); each (4,) by predicted or true class, zeros when not given.

    * VEB: TP = Vv; FN = V beats called anything else or missed; FP = Nv + Sv + extra detections
      called V. A fusion beat (F) or a Q beat called V is neither a true nor a false VEB — EC57's
      exception, and the one place where VEB +P differs from `per_class`'s V +P over matched beats.
      FPR = FP / (FP + TN), TN being every beat neither V nor called V (F and Q called V left out).
    * SVEB: TP = Ss; FN = S beats called anything else or missed; FP = N, V, F beats and extra
      detections called S (Q beats called S are not counted).
    """
    cm = np.asarray(confusion, dtype=np.int64)
    extra, q, miss = _counts(extra_called), _counts(q_called), _counts(missed)
    n, s, v = (CLASSES.index(c) for c in ("N", "S", "V"))
    v_tp = int(cm[v, v])
    v_fn = int(cm[v].sum()) - v_tp + int(miss[v])
    v_fp = int(cm[n, v] + cm[s, v] + extra[v])
    v_tn = int(cm.sum() - cm[v].sum() - cm[:, v].sum() + cm[v, v]) + int(q.sum() - q[v]) + int(extra.sum() - extra[v])
    s_tp = int(cm[s, s])
    s_fn = int(cm[s].sum()) - s_tp + int(miss[s])
    s_fp = int(cm[:, s].sum()) - s_tp + int(extra[s])
    return {
        "veb": {"se": _ratio(v_tp, v_tp + v_fn), "ppv": _ratio(v_tp, v_tp + v_fp), "fpr": _ratio(v_fp, v_tn + v_fp)},
        "sveb": {"se": _ratio(s_tp, s_tp + s_fn), "ppv": _ratio(s_tp, s_tp + s_fp)},
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    k = len(CLASSES)
    return np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)


def metrics(y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, *,
            missed: np.ndarray | None = None) -> dict[str, Any]:
    """The `evaluate` dict from every detected beat's label (0–3, `Q_LABEL` or `UNMATCHED`) and prediction.

    Per-class figures, macro-F1, AUROC and the confusion use the N/S/V/F-labelled beats only; the
    EC57 statistics also count the predictions on Q beats and unmatched detections, and `missed`
    (per-class reference beats the detector never found, `BeatSet.missed`).
    """
    y_true, y_pred, score = np.asarray(y_true), np.asarray(y_pred), np.asarray(score)
    lab = (y_true >= 0) & (y_true < len(CLASSES))
    abnormal = (y_true[lab] != 0).astype(int)
    auroc = float(roc_auc_score(abnormal, score[lab])) if 0 < abnormal.sum() < len(abnormal) else None
    return metrics_from_confusion(
        confusion(y_true[lab], y_pred[lab]), auroc, extra_called=class_counts(y_pred[y_true == UNMATCHED]),
        q_called=class_counts(y_pred[y_true == Q_LABEL]), missed=missed,
    )


def evaluate(model: nn.Module, data: Data) -> dict[str, Any]:
    """{"per_class": {"N": {"se", "ppv"}, "S": …, "V": …, "F": …}, "macro_f1", "auroc", "beats", "ec57",
    "confusion"}.

    Per-class figures count the N/S/V/F-labelled beats (see `metrics`); `auroc` is abnormal (S/V/F) vs N
    from `abnormal_score`. Pass whole record BeatSets (not `.labelled()`) for EC57's full accounting of
    extra detections and missed beats.
    """
    beats = whole_beatset(data)
    pred, score = predict(model, beats)
    return metrics(beats.y, pred, score, missed=beats.missed)


def threshold_for_sensitivity(model: nn.Module, data: Data, target_se: float = 0.9, default: float = 0.5) -> float:
    """The highest abnormal-score threshold that still flags ≥ `target_se` of the wearer's abnormal beats.

    Personalisation: each wearer's alert threshold is set on their own confirmed beats. With no
    abnormal beats on record there is nothing to calibrate on and `default` is returned.
    """
    if not 0 < target_se <= 1:
        raise ValueError(f"target_se must be in (0, 1], got {target_se!r}")
    beats = as_beatset(data)
    _, score = predict(model, beats)
    abn = np.sort(score[beats.y != 0])
    if abn.size == 0:
        log.info("no abnormal beats to calibrate on; threshold stays %.3f", default)
        return default
    k = math.floor((1 - target_se) * abn.size + 1e-9)  # at most k abnormal beats may fall below
    return float(abn[min(k, abn.size - 1)])
