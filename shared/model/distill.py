"""A smaller variant of the beat classifier, distilled from the full one, for a watch whose CPU runs late.

Why distillation and not a small model trained from the labels alone: the teacher's soft outputs say
how N-like an S beat looks, which the hard labels cannot, and a small student learns more from them
per beat (Hinton et al. 2015). The loss is α·T²·KL(student/T ‖ teacher/T) + (1 − α)·CE(labels) with
the teacher's class weighting on the hard term; the teacher sees the same augmented beats as the
student. T = 4 and α = 0.5 are fixed in advance, not tuned (on DS2 nothing may be chosen).

Why the small architecture is two convolutions wide 4 and 8 (`SMALL_CONFIG`): at the watch's batch
sizes (1–3 beats) the cost on a CPU is mostly per-layer dispatch, not arithmetic, so depth sets the
latency. Measured here (1 torch thread, median of 300 calls, random weights): the full (8, 16, 24)
net 0.134 ms for one beat and 0.29 ms for two; (4, 8, 12) only 0.125 / 0.27 ms despite 3.7× fewer
multiply-accumulates; (4, 8) 0.098 / 0.20 ms with 7× fewer; one convolution (8,) 0.072 / 0.125 ms but
it sees only 7 samples of the wave before pooling. (4, 8) is the smallest two-layer net: the most
saved for a device where arithmetic does dominate, and ≈ 30 % saved here.

`measure_latency` is the benchmark both the distillation step and `bench/model_variants.py` write into
their reports: per call at a given batch size, on one thread, as `LearnedDetector` runs it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shared.model.data import BeatSet
from shared.model.net import BeatNet, NetConfig
from shared.model.train import Data, TrainResult, Weighting, as_beatset, class_weights

log = logging.getLogger(__name__)

SMALL_CONFIG = NetConfig(channels=(4, 8), hidden=16, context_hidden=12)
#: Batch sizes a watch classifies at: one beat, or the 2–3 beats of one second of signal at a fast rate.
WINDOW_BATCHES: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation settings (saved in the student's meta)."""

    temperature: float = 4.0
    alpha: float = 0.5  # weight of the teacher's soft term; 1 − alpha on the hard labels
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3
    class_weighting: Weighting = "sqrt"  # the shipped teacher's weighting
    augment: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not isinstance(self.class_weighting, str):
            d["class_weighting"] = list(self.class_weighting)
        return d


def distill(teacher: nn.Module, student: nn.Module, data: Data, config: DistillConfig | None = None) -> TrainResult:
    """Train `student` in place on N/S/V/F beats of `data` from `teacher`'s soft outputs and the labels.

    The teacher is only read (eval mode, no gradients). Same seed, same data → same student.
    """
    cfg = config or DistillConfig()
    if not 0.0 <= cfg.alpha <= 1.0 or cfg.temperature <= 0:
        raise ValueError(f"alpha must be in [0, 1] and temperature > 0, got {cfg.alpha}, {cfg.temperature}")
    beats = as_beatset(data)
    t0 = time.perf_counter()
    n = len(beats)
    if n == 0:
        return TrainResult(float("nan"), 0)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    wave, ctx = torch.from_numpy(beats.X_wave), torch.from_numpy(beats.X_rr)
    y = torch.from_numpy(beats.y.astype(np.int64))
    hard = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(beats.y, cfg.class_weighting)))
    soft = nn.KLDivLoss(reduction="batchmean", log_target=True)
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    temp = cfg.temperature
    teacher.eval()
    student.train()
    epoch_losses: list[float] = []
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            xb, cb, yb = wave[idx], ctx[idx], y[idx]
            if cfg.augment:  # the same gain and noise as `train_local(augment=True)`
                scale = 1.0 + 0.1 * torch.randn(len(idx), 1, 1, generator=gen)
                xb = xb * scale + 0.05 * torch.randn(xb.shape, generator=gen)
            with torch.no_grad():
                target = torch.log_softmax(teacher(xb, cb) / temp, dim=1)
            logits = student(xb, cb)
            loss = (cfg.alpha * temp * temp * soft(torch.log_softmax(logits / temp, dim=1), target)
                    + (1.0 - cfg.alpha) * hard(logits, yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        epoch_losses.append(total / n)
        log.info("distill epoch %d/%d loss %.4f (%.0f s)", len(epoch_losses), cfg.epochs, epoch_losses[-1],
                 time.perf_counter() - t0)
    student.eval()
    return TrainResult(epoch_losses[-1], n, epoch_losses, time.perf_counter() - t0)


def measure_latency(model: nn.Module, beats: BeatSet, batch_sizes: Sequence[int] = WINDOW_BATCHES, *,
                    calls: int = 300, warmup: int = 30) -> dict[str, dict[str, float]]:
    """Per-call inference time (ms; median and p95 of `calls`) at each batch size, on one torch thread.

    One thread because that is how `LearnedDetector` classifies; the previous thread count is restored.
    Beats are taken in turn from `beats` so that no call sees the same input twice in a row.
    """
    if len(beats) < max(batch_sizes):
        raise ValueError(f"need at least {max(batch_sizes)} beats, got {len(beats)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.eval()
    out: dict[str, dict[str, float]] = {}
    try:
        with torch.inference_mode():
            wave, ctx = torch.from_numpy(beats.X_wave), torch.from_numpy(beats.X_rr)
            for bs in batch_sizes:
                starts = [(i * bs) % (len(beats) - bs + 1) for i in range(warmup + calls)]
                times = []
                for i, s in enumerate(starts):
                    t0 = time.perf_counter()
                    model(wave[s:s + bs], ctx[s:s + bs])
                    if i >= warmup:
                        times.append(time.perf_counter() - t0)
                out[f"batch{bs}"] = {"median_ms": round(1e3 * float(np.median(times)), 4),
                                     "p95_ms": round(1e3 * float(np.percentile(times, 95)), 4)}
    finally:
        torch.set_num_threads(threads)
    return out


def relative_cost(small: dict[str, dict[str, float]], full: dict[str, dict[str, float]]) -> float:
    """The small variant's inference time as a fraction of the full one's: mean over the batch sizes both
    were measured at of the ratio of medians. What a watch on the small model multiplies by to predict
    what the full one would take."""
    keys = sorted(set(small) & set(full))
    if not keys:
        raise ValueError("no batch size measured for both variants")
    return round(float(np.mean([small[k]["median_ms"] / full[k]["median_ms"] for k in keys])), 4)


def multiply_accumulates(config: NetConfig) -> int:
    """Multiply-accumulates per beat of the convolutions and linear layers (norms, pooling left out): the
    cost on a device where arithmetic dominates, which at these sizes a desktop CPU's dispatch hides."""
    total, length, c_in = 0, config.wave_len, config.wave_channels
    for i, c in enumerate(config.channels):
        total += length * c * c_in * config.kernel
        c_in = c
        if i < len(config.channels) - 1:
            length //= 2
    h, out = config.context_hidden, config.hidden
    total += config.n_context * h + h * h + (c_in * config.pooled + h) * out + out * config.n_classes
    return total


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def small_student(config: NetConfig = SMALL_CONFIG, seed: int = 0) -> BeatNet:
    """A freshly initialised student (seeded: the same seed gives the same starting weights)."""
    torch.manual_seed(seed)
    return BeatNet(config)
