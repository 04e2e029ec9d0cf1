"""What the reader knows about beats: the streaming QRS detector's R peaks, as two input channels and a
handful of strip-level RR features.

Why give a network the R peaks at all: the strongest, most portable sign of AF is an irregularly
irregular RR series, and a small CNN learns to measure RR irregularity across many beats slowly and
poorly from waveform alone. In training the beats come from the watch's own detector
(`shared.ecg.qrs.StreamingQrsDetector`, run at `RHYTHM_FS` on the band-passed record); a reader running
alone (the watch) finds them the same way, while the strip analysis hands it its own beats (both of its
detectors merged, a slightly better set: the validation scores that path). Everything derived from the
beats is divided by the strip's own median RR: scale-free, rate-free, lead-free.

Channels (per sample): the RR interval the sample sits in over the median RR, minus 1; and the change
from the previous interval over the median RR. Features (per strip): `RR_FEATURES`.
"""

from __future__ import annotations

import numpy as np

from shared.ecg.qrs import StreamingQrsDetector
from shared.model.rhythm.preprocess import RHYTHM_FS

RR_FEATURES: tuple[str, ...] = (
    "has_rr", "log_hr", "cv", "nrmssd", "drr", "tpr", "sampen", "premature", "long", "changing",
    "max_ratio", "min_ratio", "sd1_sd2", "coverage", "log_beats",
)
N_RR_FEATURES = len(RR_FEATURES)
N_RR_CHANNELS = 2
MIN_RR = 4  # fewer intervals: features are zeros and has_rr is 0
_FLUSH_S = 1.0


def detect_beats(x: np.ndarray) -> np.ndarray:
    """R-peak sample indices of a band-passed strip at `RHYTHM_FS` (the detector's look-ahead flushed)."""
    if len(x) < int(2.5 * RHYTHM_FS):
        return np.zeros(0, dtype=np.int64)
    detector = StreamingQrsDetector(RHYTHM_FS)
    flush = np.zeros(int(_FLUSH_S * RHYTHM_FS), dtype=np.float32)
    beats = detector.feed(np.concatenate([np.asarray(x, dtype=np.float32), flush]))
    return np.array([b.sample for b in beats if b.sample < len(x)], dtype=np.int64)


def rr_channels(beats: np.ndarray, n: int) -> np.ndarray:
    """(2, n) float32: relative RR and relative ΔRR at every sample (zeros outside beats / too few beats)."""
    out = np.zeros((N_RR_CHANNELS, n), dtype=np.float32)
    b = np.asarray(beats, dtype=np.int64)
    b = b[(b >= 0) & (b < n)]
    if len(b) < 3:
        return out
    rr = np.diff(b).astype(np.float64)
    med = float(np.median(rr))
    rel = np.clip(rr / med - 1.0, -2.0, 2.0)
    drel = np.clip(np.concatenate([[0.0], np.diff(rr)]) / med, -2.0, 2.0)
    # interval k spans samples [b[k], b[k+1]); before the first beat and after the last: zeros
    idx = np.searchsorted(b, np.arange(n), side="right") - 1
    inside = (idx >= 0) & (idx < len(rr))
    out[0, inside] = rel[idx[inside]]
    out[1, inside] = drel[idx[inside]]
    return out


def _sampen(x: np.ndarray, m: int = 2, r_factor: float = 0.2) -> float:
    n = len(x)
    if n < m + 10 or np.std(x) == 0:
        return 0.0
    r = r_factor * float(np.std(x))

    def count(mm: int) -> int:
        emb = np.lib.stride_tricks.sliding_window_view(x, mm)[: n - m]
        dist = np.max(np.abs(emb[:, None, :] - emb[None, :, :]), axis=2)
        return int((np.sum(dist <= r) - len(emb)) // 2)

    b, a = count(m), count(m + 1)
    if b == 0:
        return 0.0
    return 2.5 if a == 0 else float(min(2.5, -np.log(a / b)))


def rr_features(beats: np.ndarray, n: int) -> np.ndarray:
    """`RR_FEATURES` of the beats inside a strip of `n` samples (float32)."""
    out = np.zeros(N_RR_FEATURES, dtype=np.float32)
    b = np.asarray(beats, dtype=np.int64)
    b = b[(b >= 0) & (b < n)]
    out[-1] = np.log1p(len(b)) / 5.0
    if len(b) < MIN_RR + 1:
        return out
    rr = np.diff(b) / RHYTHM_FS
    med = float(np.median(rr))
    mean = float(np.mean(rr))
    d = np.diff(rr)
    turns = int(np.sum(d[:-1] * d[1:] < 0)) if len(d) >= 2 else 0
    sd1 = float(np.std(d)) / float(np.sqrt(2)) if len(d) else 0.0
    sd2 = float(np.sqrt(max(0.0, 2 * float(np.var(rr)) - sd1**2)))
    out[:-1] = [
        1.0,
        np.log(60.0 / med / 60.0),
        np.std(rr) / mean,
        np.sqrt(np.mean(d**2)) / mean if len(d) else 0.0,
        np.median(np.abs(d)) / med if len(d) else 0.0,
        turns / (2 * (len(rr) - 2) / 3) if len(rr) > 2 else 0.0,
        _sampen(rr / med),
        np.mean(rr < 0.8 * med),
        np.mean(rr > 1.2 * med),
        np.mean(np.abs(d) > 0.1 * med) if len(d) else 0.0,
        np.log(rr.max() / med),
        np.log(rr.min() / med),
        sd1 / sd2 if sd2 > 0 else 0.0,
        (b[-1] - b[0]) / n,
    ]
    return np.clip(out, -5.0, 5.0).astype(np.float32)


def strip_input(x: np.ndarray, beats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The network's input for one band-passed strip at `RHYTHM_FS`: ((1 + 2, n) signal and RR channels,
    RR features). Beats are detected here unless given (the same detector either way)."""
    from shared.model.rhythm.preprocess import normalise

    b = detect_beats(x) if beats is None else np.asarray(beats, dtype=np.int64)
    n = len(x)
    return np.concatenate([normalise(x)[None, :], rr_channels(b, n)]), rr_features(b, n)
