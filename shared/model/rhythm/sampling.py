"""Training examples from recordings: crops, their labels, and augmentation that mimics real wearables.

A batch is `n` crops of one length (`crop_samples`), each with a mask for the part that is real signal
(short recordings are padded, some crops are shortened on purpose: the product reads 5–60 s strips).

Whole-recording labels (CinC 2017) label the strip only. Per-sample labels (MIT-BIH, VFDB) label both
the strip and every frame. Crops from those are drawn class-balanced (pick a class, then a moment of
that class, then a crop around it) and a share of them end a few seconds after the onset of VT, VF or
AF, as an alert strip does: the reader must see a run begin at the very end of a strip.

Augmentation (training only): polarity flip; white noise; residual baseline wander; electrode-motion
bursts (their frames are not labelled: under heavy motion nobody knows the rhythm); time stretch
(±10 % rate); smoothing (a slower device's band). Every crop is normalised as inference normalises a
strip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.model.rhythm.beats import rr_channels, rr_features
from shared.model.rhythm.corpus import Recording
from shared.model.rhythm.labels import AF, CLASSES, IGNORE, VF, VT
from shared.model.rhythm.preprocess import RHYTHM_FS, normalise

LIFE_THREATENING_SHARE = 0.25  # of a crop: VT/VF covering this much names the crop's strip label


@dataclass(frozen=True)
class Batch:
    x: np.ndarray  # (B, 1 + RR channels, T) float32: the normalised strip, then `beats.rr_channels`
    features: np.ndarray  # (B, N_RR_FEATURES) float32
    mask: np.ndarray  # (B, T) bool
    strip: np.ndarray  # (B,) int64, IGNORE when unknown
    frames: np.ndarray  # (B, T) int64 per-sample labels, IGNORE where unknown


def strip_label(labels: np.ndarray) -> int:
    """The label of a strip from its per-sample labels: VT/VF when they cover a quarter, else the majority.

    Unknown (IGNORE) when under half of the strip is labelled.
    """
    known = labels[labels != IGNORE]
    if len(known) < 0.5 * len(labels) or len(known) == 0:
        return IGNORE
    counts = np.bincount(known.astype(np.int64), minlength=len(CLASSES))
    threatening = max((VF, VT), key=lambda c: counts[c])
    if counts[threatening] >= LIFE_THREATENING_SHARE * len(labels):
        return int(threatening)
    return int(np.argmax(counts))


@dataclass
class _ClassIndex:
    """Per class, the (recording, sample) positions where it holds, subsampled to one per second."""

    positions: dict[int, np.ndarray]
    onsets: np.ndarray  # (k, 2): recording index, sample of an onset of VT, VF or AF


def _index(recordings: Sequence[Recording]) -> _ClassIndex:
    step = int(RHYTHM_FS)
    per_class: dict[int, list[np.ndarray]] = {c: [] for c in range(len(CLASSES))}
    onsets: list[tuple[int, int]] = []
    for i, rec in enumerate(recordings):
        if rec.labels is None:
            continue
        sub = rec.labels[::step]
        for c in range(len(CLASSES)):
            where = np.flatnonzero(sub == c) * step
            if len(where):
                per_class[c].append(np.stack([np.full(len(where), i), where], axis=1))
        change = np.flatnonzero(np.diff(rec.labels.astype(np.int16)) != 0) + 1
        for s in change:
            if rec.labels[s] in (VT, VF, AF) and rec.labels[s - 1] != rec.labels[s]:
                onsets.append((i, int(s)))
    positions = {c: np.concatenate(v) if v else np.zeros((0, 2), dtype=np.int64) for c, v in per_class.items()}
    return _ClassIndex(positions, np.array(onsets, dtype=np.int64).reshape(-1, 2))


class CropSampler:
    """Draws batches from whole-label and per-sample-label recordings (see the module docstring)."""

    _start = 0  # where the last crop began in its recording (to take its beats)

    def __init__(self, recordings: Sequence[Recording], *, crop_s: float = 30.0, onset_share: float = 0.25,
                 short_share: float = 0.3, augment: bool = True, seed: int = 0,
                 long_strip_classes: Sequence[int] | None = None) -> None:
        self.whole = [r for r in recordings if r.label is not None]
        self.long = [r for r in recordings if r.labels is not None]
        self.crop = int(crop_s * RHYTHM_FS)
        self.onset_share = onset_share
        self.short_share = short_share
        self.augment = augment
        self.long_strip_classes = None if long_strip_classes is None else frozenset(long_strip_classes)
        self.rng = np.random.default_rng(seed)
        self.index = _index(self.long)
        self.classes = [c for c, p in self.index.positions.items() if len(p)]

    # -- crops -----------------------------------------------------------------------------------------
    def _fit(self, x: np.ndarray, labels: np.ndarray | None, start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """A crop of `self.crop` samples from `start` (padded at the end), its labels, its real length."""
        n = self.crop
        start = int(np.clip(start, 0, max(0, len(x) - n)))
        self._start = start
        seg = x[start:start + n]
        lab = labels[start:start + n] if labels is not None else np.full(len(seg), IGNORE, np.int8)
        real = len(seg)
        if real < n:
            seg = np.concatenate([seg, np.zeros(n - real, np.float32)])
            lab = np.concatenate([lab, np.full(n - real, IGNORE, np.int8)])
        return seg, lab, real

    def _beats(self, rec: Recording, real: int) -> np.ndarray:
        if rec.beats is None:
            return np.zeros(0, dtype=np.int64)
        b = rec.beats - self._start
        return b[(b >= 0) & (b < real)]

    def whole_crop(self, rec: Recording) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
        start = int(self.rng.integers(0, max(1, len(rec.x) - self.crop + 1)))
        seg, lab, real = self._fit(rec.x, None, start)
        assert rec.label is not None
        return seg, lab, real, rec.label, self._beats(rec, real)

    def long_crop(self) -> tuple[np.ndarray, np.ndarray, int, int, np.ndarray]:
        n = self.crop
        if len(self.index.onsets) and self.rng.random() < self.onset_share:
            i, onset = self.index.onsets[self.rng.integers(len(self.index.onsets))]
            rec = self.long[int(i)]
            length = n if self.rng.random() > self.short_share else int(self.rng.uniform(8, 30) * RHYTHM_FS)
            length = min(length, n)
            end = int(onset + self.rng.uniform(0.5, 4.0) * RHYTHM_FS)
            start = max(0, end - length)
            seg, lab, real = self._fit(rec.x, rec.labels, start)
            real = min(real, length)
        else:
            c = self.classes[self.rng.integers(len(self.classes))]
            i, pos = self.index.positions[c][self.rng.integers(len(self.index.positions[c]))]
            rec = self.long[int(i)]
            length = n if self.rng.random() > self.short_share else int(self.rng.uniform(8, 30) * RHYTHM_FS)
            length = min(length, n)
            start = int(pos - self.rng.uniform(0.1, 0.9) * length)
            seg, lab, real = self._fit(rec.x, rec.labels, start)
            real = min(real, length)
        seg[real:] = 0.0
        lab[real:] = IGNORE
        label = strip_label(lab[:real])
        if self.long_strip_classes is not None and label not in self.long_strip_classes:
            label = IGNORE  # its frames still teach; its strip label would contradict CinC's (see TrainConfig)
        return seg, lab, real, label, self._beats(rec, real)

    # -- augmentation ----------------------------------------------------------------------------------
    def _augment(self, seg: np.ndarray, lab: np.ndarray, real: int, beats: np.ndarray) -> tuple[int, np.ndarray]:
        """In place on the first `real` samples (not normalised yet); returns the new real length and beats."""
        rng = self.rng
        x = seg[:real]
        if real < 10:
            return real, beats
        amp = float(np.percentile(np.abs(x), 99)) or 1.0
        if rng.random() < 0.5:
            x *= -1.0
        if rng.random() < 0.3:  # time stretch ±10 %: a different rate, same rhythm
            factor = rng.uniform(0.9, 1.1)
            src = np.arange(real) * factor
            keep = src <= real - 1
            x[keep] = np.interp(src[keep], np.arange(real), x)
            x[~keep] = 0.0
            lab[:real][keep] = lab[:real][np.round(src[keep]).astype(int)]
            lab[:real][~keep] = IGNORE
            real = int(keep.sum())
            x = seg[:real]
            beats = np.round(beats / factor).astype(np.int64)
            beats = beats[beats < real]
        t = np.arange(real) / RHYTHM_FS
        if rng.random() < 0.5:  # residual baseline wander (respiration, movement) after the band-pass
            for _ in range(2):
                x += rng.uniform(0, 0.3) * amp * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3))
        if rng.random() < 0.5:  # white noise, SNR down to ≈ 15 dB of the QRS
            x += rng.normal(0.0, rng.uniform(0.0, 0.15) * amp, real).astype(np.float32)
        if rng.random() < 0.3:  # electrode-motion bursts: the rhythm under them is unknown
            for _ in range(int(rng.integers(1, 3))):
                width = int(rng.uniform(0.3, 1.5) * RHYTHM_FS)
                a = int(rng.integers(0, max(1, real - width)))
                burst = np.cumsum(rng.normal(0, 1, width))
                burst -= np.linspace(burst[0], burst[-1], width)
                burst *= rng.uniform(0.3, 1.5) * amp / (np.abs(burst).max() + 1e-6)
                x[a:a + width] += burst.astype(np.float32) * np.hanning(width).astype(np.float32)
                lab[a:a + width] = IGNORE
        if rng.random() < 0.2:  # a slower device's band
            k = int(rng.integers(2, 4))
            x[:] = np.convolve(x, np.ones(k) / k, mode="same")
        return real, beats

    # -- batches ---------------------------------------------------------------------------------------
    def batch(self, items: Sequence[Recording | None]) -> Batch:
        """One batch: a whole-label recording per item, or a fresh per-sample-label crop for None."""
        xs, feats, masks, strips, frames = [], [], [], [], []
        for item in items:
            seg, lab, real, label, beats = self.whole_crop(item) if item is not None else self.long_crop()
            seg = seg.copy()
            lab = lab.copy()
            if self.augment:
                real, beats = self._augment(seg, lab, real, beats)
                seg[real:] = 0.0
                lab[real:] = IGNORE
            seg[:real] = normalise(seg[:real])
            mask = np.zeros(self.crop, dtype=bool)
            mask[:real] = True
            xs.append(np.concatenate([seg[None, :], rr_channels(beats, self.crop)]))
            feats.append(rr_features(beats, real))
            masks.append(mask)
            strips.append(label)
            frames.append(lab.astype(np.int64))
        return Batch(np.stack(xs).astype(np.float32), np.stack(feats), np.stack(masks),
                     np.array(strips, dtype=np.int64), np.stack(frames))

    def epoch(self, batch_size: int, long_crops: int) -> list[list[Recording | None]]:
        """The item lists of one epoch: every whole-label recording once, plus `long_crops` crops, shuffled."""
        items: list[Recording | None] = [*self.whole, *([None] * (long_crops if self.long else 0))]
        order = self.rng.permutation(len(items))
        shuffled = [items[i] for i in order]
        return [shuffled[i:i + batch_size] for i in range(0, len(shuffled), batch_size)]
