"""R peaks of a stored strip, for the beat marks on the report's ECG paper and a cross-check of the HR.

Uses the project's own streaming detector (`shared.ecg.qrs`), always at the strip's sampling rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.ecg.qrs import StreamingQrsDetector

#: Silence appended so the detector's ~0.4 s look-ahead confirms the strip's last beats too.
_FLUSH_S = 1.0


@dataclass(frozen=True, slots=True)
class BeatMarks:
    """R-peak times (seconds from the strip's first sample) and what they imply; `method` is provenance."""

    r_peaks_s: tuple[float, ...]
    fs: float
    method: str = "cardiomesh-streaming-qrs"
    ventricular: tuple[bool, ...] = ()  # per beat, when the beats come from an analysis that labels them

    @property
    def hr_bpm(self) -> float | None:
        """Mean rate over the detected beats (None with fewer than 2 beats)."""
        if len(self.r_peaks_s) < 2:
            return None
        rr = np.diff(self.r_peaks_s)
        return float(60.0 / np.mean(rr))

    @property
    def max_rr_s(self) -> float | None:
        return float(np.max(np.diff(self.r_peaks_s))) if len(self.r_peaks_s) >= 2 else None


def detect_r_peaks(signal_mv: np.ndarray, *, fs: float) -> BeatMarks:
    """R peaks of `signal_mv` (mV at `fs` Hz); an empty or flat strip gives no beats, never an error."""
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs!r}")
    x = np.nan_to_num(np.asarray(signal_mv, dtype=np.float64))
    if x.size < int(2.5 * fs):  # the detector learns its thresholds on the first 2 s
        return BeatMarks(r_peaks_s=(), fs=fs)
    detector = StreamingQrsDetector(fs)
    tail = np.full(int(_FLUSH_S * fs), float(x[-1]))
    beats = detector.feed(x) + detector.feed(tail)
    peaks = tuple(round(b.sample / fs, 4) for b in beats if b.sample < x.size)
    return BeatMarks(r_peaks_s=peaks, fs=fs)
