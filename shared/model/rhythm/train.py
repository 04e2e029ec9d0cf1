"""Training, calibration and batch prediction of the rhythm reader.

`fit` trains a `RhythmNet` on recordings (whole-label and per-sample-label mixed in every batch) with a
strip loss and a frame loss, each class-weighted, for a fixed number of epochs under a one-cycle
schedule. The validation recordings it is given (always from the training side of a split) calibrate
it: `calibrate` fits one temperature (Guo et al. 2017), so the probabilities the product shows mean what
they say, and `tune_class_bias` sets the decision offsets between sinus, AF and other rhythm that
maximise the mean F1 on validation whole recordings (the probabilities stay calibrated; only the named
class moves). Nothing here ever sees a test recording.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from shared.model.rhythm.beats import strip_input
from shared.model.rhythm.corpus import Recording
from shared.model.rhythm.labels import AF, CLASSES, IGNORE, NOISE, VF, VT
from shared.model.rhythm.net import DOWNSAMPLE, RhythmNet, RhythmNetConfig
from shared.model.rhythm.preprocess import RHYTHM_FS
from shared.model.rhythm.sampling import Batch, CropSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 32
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    crop_s: float = 30.0
    long_crops_per_epoch: int = 1000
    frame_weight: float = 0.5
    # Strip labels taken from long annotated records only for these classes (AF, VT, VF, noise): their
    # "sinus" holds frequent ectopy that CinC 2017 calls "other rhythm", so for sinus vs other the strip
    # head learns CinC's convention alone; the frame head learns every class from every database.
    long_strip_classes: tuple[int, ...] = (AF, VT, VF, NOISE)
    seed: int = 0
    threads: int = 0  # 0: torch's default

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FitResult:
    model: RhythmNet
    temperature: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def _class_weights(counts: np.ndarray) -> torch.Tensor:
    """Inverse square-root frequency, mean 1 over the classes present (absent classes weigh 1)."""
    counts = counts.astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    present = w > 0
    w[present] /= w[present].mean()
    w[~present] = 1.0
    return torch.tensor(w, dtype=torch.float32)


def frame_targets(labels: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Per-sample labels (B, T) → the label at each frame's centre (B, F)."""
    idx = (torch.arange(n_frames) * DOWNSAMPLE + DOWNSAMPLE // 2).clamp(max=labels.shape[1] - 1)
    return labels[:, idx]


def _tensors(batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(batch.x), torch.from_numpy(batch.features), torch.from_numpy(batch.mask),
            torch.from_numpy(batch.strip), torch.from_numpy(batch.frames))


def _loss(model: RhythmNet, batch: Batch, strip_w: torch.Tensor, frame_w: torch.Tensor,
          frame_weight: float) -> tuple[torch.Tensor, float, float]:
    x, feats, mask, strip_y, frame_y = _tensors(batch)
    strip, frames = model(x, feats, mask)
    loss_s = F.cross_entropy(strip, strip_y, weight=strip_w, ignore_index=IGNORE) \
        if bool((strip_y != IGNORE).any()) else strip.sum() * 0
    fy = frame_targets(frame_y, frames.shape[1])
    loss_f = F.cross_entropy(frames.reshape(-1, frames.shape[-1]), fy.reshape(-1), weight=frame_w,
                             ignore_index=IGNORE) if bool((fy != IGNORE).any()) else frames.sum() * 0
    return loss_s + frame_weight * loss_f, float(loss_s.detach()), float(loss_f.detach())


def _fixed_batches(sampler: CropSampler, n_long: int, batch_size: int) -> list[Batch]:
    """Validation batches drawn once (same crops every epoch, no augmentation)."""
    items = sampler.epoch(batch_size, n_long)
    return [sampler.batch(chunk) for chunk in items]


def fit(train: Sequence[Recording], valid: Sequence[Recording], config: TrainConfig | None = None,
        net: RhythmNetConfig | None = None, *, init: RhythmNet | None = None,
        progress: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Train on `train`, choose the epoch and the temperature on `valid` (both from the training side)."""
    cfg = config or TrainConfig()
    started = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(init) if init is not None else RhythmNet(net)
    sampler = CropSampler(train, crop_s=cfg.crop_s, seed=cfg.seed, long_strip_classes=cfg.long_strip_classes)
    vsampler = CropSampler(valid, crop_s=cfg.crop_s, augment=False, seed=cfg.seed + 1,
                           long_strip_classes=cfg.long_strip_classes)
    valid_batches = _fixed_batches(vsampler, max(64, cfg.long_crops_per_epoch // 8), cfg.batch_size) \
        if valid else []
    strip_counts = np.bincount([r.label for r in sampler.whole if r.label is not None], minlength=len(CLASSES))
    # long crops are drawn class-balanced: count them as evenly spread over the classes present
    present = np.array([len(sampler.index.positions[c]) > 0 for c in range(len(CLASSES))])
    strip_present = present & np.isin(np.arange(len(CLASSES)), cfg.long_strip_classes)
    if strip_present.any():
        strip_counts = strip_counts + strip_present * (cfg.long_crops_per_epoch / max(1, present.sum()))
    strip_w = _class_weights(strip_counts)
    frame_w = _class_weights(present.astype(float))  # balanced by sampling already
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil((len(sampler.whole) + (cfg.long_crops_per_epoch if sampler.long else 0))
                                   / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.2)
    best: tuple[float, dict[str, torch.Tensor], int] | None = None
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        tot = n = 0.0
        for items in sampler.epoch(cfg.batch_size, cfg.long_crops_per_epoch):
            loss, _, _ = _loss(model, sampler.batch(items), strip_w, frame_w, cfg.frame_weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(items)
            n += len(items)
        row = {"epoch": epoch + 1, "train_loss": round(tot / max(n, 1), 4),
               "seconds": round(time.perf_counter() - t0, 1)}
        if valid_batches:
            model.eval()
            with torch.no_grad():
                losses = [_loss(model, b, strip_w, frame_w, cfg.frame_weight) for b in valid_batches]
            row["valid_loss"] = round(float(np.mean([float(v[0]) for v in losses])), 4)
            row["valid_strip"] = round(float(np.mean([v[1] for v in losses])), 4)
            row["valid_frame"] = round(float(np.mean([v[2] for v in losses])), 4)
            if best is None or row["valid_strip"] < best[0]:
                best = (row["valid_strip"], {}, epoch + 1)
        history.append(row)
        log.info("rhythm epoch %s", row)
        if progress is not None:
            progress(row)
    # the last epoch is kept (the one-cycle schedule ends at a small learning rate); the validation loss is
    # logged, and its best epoch reported, but choosing by it was noise: its long-record crops come from a
    # handful of people
    best_epoch = cfg.epochs if best is None else best[2]
    model.eval()
    temperature = calibrate(model, valid_batches) if valid_batches else 1.0
    return FitResult(model, temperature, history, best_epoch, time.perf_counter() - started)


def calibrate(model: RhythmNet, batches: Sequence[Batch]) -> float:
    """One temperature for the strip logits minimising the validation NLL (bounded search on a log grid)."""
    logits, labels = [], []
    with torch.no_grad():
        for b in batches:
            x, feats, mask, y, _ = _tensors(b)
            strip, _ = model(x, feats, mask)
            keep = y != IGNORE
            logits.append(strip[keep])
            labels.append(y[keep])
    if not logits:
        return 1.0
    z, y = torch.cat(logits), torch.cat(labels)
    if len(y) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 60))
    nll = [float(F.cross_entropy(z / t, y)) for t in grid]
    return float(round(grid[int(np.argmin(nll))], 4))


def tune_class_bias(probabilities: np.ndarray, labels: np.ndarray, classes: Sequence[int] = (1, 2),
                    scored: Sequence[int] = (0, 1, 2), grid: np.ndarray | None = None, rounds: int = 3) -> np.ndarray:
    """Additive offsets on log-probabilities (coordinate search over `classes`) maximising the mean F1 over
    `scored` classes; zeros when there is nothing to tune on."""
    bias = np.zeros(probabilities.shape[1] if probabilities.ndim == 2 else len(CLASSES))
    if len(labels) < 20:
        return bias
    grid = np.round(np.linspace(-1.5, 1.5, 31), 2) if grid is None else grid
    logp = np.log(np.clip(probabilities, 1e-9, 1.0))

    def score(b: np.ndarray) -> float:
        pred = np.argmax(logp + b, axis=1)
        f1 = []
        for c in scored:
            tp = np.sum((pred == c) & (labels == c))
            denom = np.sum(pred == c) + np.sum(labels == c)
            f1.append(2 * tp / denom if denom else 0.0)
        return float(np.mean(f1))

    for _ in range(rounds):
        for c in classes:
            best_v, best_s = bias[c], score(bias)
            for v in grid:
                trial = bias.copy()
                trial[c] = v
                sc = score(trial)
                if sc > best_s + 1e-9 or (abs(sc - best_s) <= 1e-9 and abs(v) < abs(best_v)):
                    best_v, best_s = v, sc
            bias[c] = best_v
    return bias


@dataclass(frozen=True)
class StripOutput:
    """What the reader says about one strip: calibrated class probabilities, and per-frame probabilities."""

    probabilities: np.ndarray  # (C,)
    frame_probabilities: np.ndarray  # (F, C)
    frame_s: float = DOWNSAMPLE / RHYTHM_FS


def predict_strips(model: RhythmNet, strips: Sequence[np.ndarray], temperature: float = 1.0,
                   batch_size: int = 32, beats: Sequence[np.ndarray | None] | None = None) -> list[StripOutput]:
    """Strips already at `RHYTHM_FS` and band-passed → outputs (each strip normalised on its own; beats
    detected on each strip unless given).

    Strips are grouped by length so a batch needs no padding (padding changes nothing but costs time).
    """
    model.eval()
    order = sorted(range(len(strips)), key=lambda i: len(strips[i]))
    out: list[StripOutput | None] = [None] * len(strips)
    with torch.no_grad():
        i = 0
        while i < len(order):
            n = len(strips[order[i]])
            group = [order[i]]
            i += 1
            while i < len(order) and len(strips[order[i]]) == n and len(group) < batch_size:
                group.append(order[i])
                i += 1
            inputs = [strip_input(strips[k], None if beats is None else beats[k]) for k in group]
            x = torch.from_numpy(np.stack([a for a, _ in inputs]))
            f = torch.from_numpy(np.stack([b for _, b in inputs]))
            strip, frames = model(x, f)
            p = torch.softmax(strip / temperature, dim=1).numpy()
            pf = torch.softmax(frames / temperature, dim=2).numpy()
            for j, k in enumerate(group):
                out[k] = StripOutput(p[j], pf[j])
    return [o for o in out if o is not None]
