"""An ECG signal that always carries its sampling rate, and the one resampler everything goes through.

Mixing rates silently (360 Hz MIT-BIH replayed as if it were 250 Hz) shifts every heart rate by 44 %;
keeping `fs` inside the value and making it a required argument everywhere rules that out.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

#: The rate the watch resamples every source to before detection.
MODEL_FS = 250.0


@dataclass(frozen=True)
class Signal:
    """One lead of ECG in millivolts at rate `fs` (Hz)."""

    samples_mv: np.ndarray
    fs: float
    lead: str
    name: str

    def __post_init__(self) -> None:
        if not self.fs > 0:
            raise ValueError(f"sampling rate must be positive, got {self.fs!r}")
        if np.ndim(self.samples_mv) != 1:
            raise ValueError(f"expected a 1-D signal, got shape {np.shape(self.samples_mv)}")

    @property
    def duration_s(self) -> float:
        return len(self.samples_mv) / self.fs

    def slice_s(self, start_s: float, end_s: float | None = None) -> Signal:
        """The part between two times (seconds from the start), clipped to the signal."""
        lo = max(0, round(start_s * self.fs))
        hi = len(self.samples_mv) if end_s is None else min(len(self.samples_mv), round(end_s * self.fs))
        return Signal(self.samples_mv[lo:max(lo, hi)], self.fs, self.lead, self.name)


def resample(signal: Signal, fs_out: float) -> Signal:
    """Polyphase resampling to `fs_out` (rational approximation of the ratio, anti-aliased)."""
    if not fs_out > 0:
        raise ValueError(f"target rate must be positive, got {fs_out!r}")
    if abs(signal.fs - fs_out) < 1e-9:
        return signal
    ratio = Fraction(fs_out / signal.fs).limit_denominator(1000)
    out = sps.resample_poly(np.asarray(signal.samples_mv, dtype=float), ratio.numerator, ratio.denominator)
    return Signal(out, fs_out, signal.lead, signal.name)
