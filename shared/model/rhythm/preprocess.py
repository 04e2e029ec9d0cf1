"""One input for the rhythm reader whatever the source: one rate, one band, one amplitude scale.

The reader must not assume a database, a sampling rate, a lead, an amplitude scale or a strip length,
so every strip goes through the same two steps before the network sees it:

1. ``to_model_rate``: polyphase resampling to ``RHYTHM_FS`` and a 0.5–40 Hz band-pass (baseline wander
   and mains hum out; QRS, P and fibrillatory waves in). Done once per record in training.
2. ``normalise``: divided by a robust amplitude (the median of per-second peak-to-peak ranges), so a
   0.3 mV wrist lead and a 3 mV chest lead look alike and one artefact spike cannot set the scale;
   clipped to ±``CLIP``. Done per strip (per crop in training), as at inference.

Polarity is left alone: training flips it at random, so the network learns both.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps

RHYTHM_FS = 100.0
BAND_HZ = (0.5, 40.0)
CLIP = 8.0
_EPS = 1e-6


@lru_cache(maxsize=4)
def _band_sos(fs: float) -> np.ndarray:
    return np.asarray(sps.butter(2, BAND_HZ, btype="bandpass", fs=fs, output="sos"))


def to_model_rate(x: np.ndarray, fs: float) -> np.ndarray:
    """`x` (mV at `fs` Hz) resampled to `RHYTHM_FS` and band-passed; float32."""
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs!r}")
    x = np.nan_to_num(np.asarray(x, dtype=np.float64).ravel())
    if abs(fs - RHYTHM_FS) > 1e-9:
        ratio = Fraction(RHYTHM_FS / fs).limit_denominator(1000)
        x = sps.resample_poly(x, ratio.numerator, ratio.denominator)
    if len(x) > 12:  # sosfiltfilt needs a few samples of padding
        x = sps.sosfiltfilt(_band_sos(RHYTHM_FS), x, padlen=min(len(x) - 1, 3 * 12))
    return x.astype(np.float32)


def amplitude(x: np.ndarray) -> float:
    """Median per-second peak-to-peak range of a strip at `RHYTHM_FS` (its whole range when shorter)."""
    n = int(RHYTHM_FS)
    k = len(x) // n
    if k == 0:
        return float(np.ptp(x)) if len(x) else 0.0
    windows = np.asarray(x[: k * n]).reshape(k, n)
    return float(np.median(windows.max(axis=1) - windows.min(axis=1)))


def normalise(x: np.ndarray) -> np.ndarray:
    """`x` divided by its robust amplitude and clipped; a flat strip stays zeros."""
    scale = amplitude(x)
    if scale < _EPS:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip(x / scale, -CLIP, CLIP).astype(np.float32)
