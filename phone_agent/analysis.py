"""The phone's local ECG analysis of an alert strip (neurokit2 underneath; `fs` always explicit).

Steps: sanity checks (length, flat line) → clean → R-peaks → quality (template correlation) → rate,
RR statistics and time-domain HRV → a rhythm label from the fixed vocabulary, or `inconclusive` when
the signal does not support a reading. Deeper analysis (intervals, delineation) comes later.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import neurokit2 as nk
import numpy as np
from scipy.stats import kurtosis

from shared.messages import Rhythm

log = logging.getLogger(__name__)

METHOD = f"neurokit2-{nk.__version__}"
MIN_DURATION_S = 4.0
FLAT_PTP_MV = 0.05
GOOD_QUALITY = 0.7
USABLE_QUALITY = 0.45
NOISE_KURTOSIS = 3.6  # ECG is peaky (kurtosis 4–20, lower at high rates); Gaussian noise sits at ≈ 3
LOW_KURTOSIS = 4.5
IRREGULAR_RATIO = 0.10  # median |ΔRR| / median RR: sinus ≈ 0.01–0.05, AF ≈ 0.15+


@dataclass(frozen=True, slots=True)
class Analysis:
    quality: str  # good | acceptable | unusable
    quality_score: float
    rhythm: Rhythm
    n_beats: int
    duration_s: float
    r_peaks: np.ndarray
    hr_bpm: float | None = None
    hr_min_bpm: float | None = None
    hr_max_bpm: float | None = None
    rr_mean_ms: float | None = None
    sdnn_ms: float | None = None
    rmssd_ms: float | None = None
    pnn50: float | None = None
    rr_irregularity: float | None = None
    irregular: bool = False
    max_rr_s: float | None = None
    note: str = ""
    analysis_ms: float = 0.0


def _unusable(duration_s: float, note: str, started: float) -> Analysis:
    return Analysis(quality="unusable", quality_score=0.0, rhythm="inconclusive", n_beats=0,
                    duration_s=duration_s, r_peaks=np.array([], dtype=int), note=note,
                    analysis_ms=(time.perf_counter() - started) * 1000)


def _peakiness(cleaned: np.ndarray, fs: float) -> float:
    """Median kurtosis over 5 s segments, filter transients at the ends dropped."""
    core = cleaned[int(0.5 * fs): len(cleaned) - int(0.5 * fs)]
    step = int(5 * fs)
    values = [float(kurtosis(core[i:i + step], fisher=False)) for i in range(0, max(len(core) - step, 0) + 1, step)]
    return float(np.median(values)) if values else 0.0


def classify_rhythm(hr_bpm: float, irregular: bool) -> Rhythm:
    if irregular:
        return "af"
    if hr_bpm > 150:
        return "svt"
    if hr_bpm > 100:
        return "sinus_tachycardia"
    if hr_bpm < 50:
        return "sinus_bradycardia"
    return "sinus"


def analyze_strip(samples_mv: np.ndarray, fs: float) -> Analysis:
    """Analyse one single-lead strip. Never raises on bad signal: it says `unusable` instead."""
    started = time.perf_counter()
    signal = np.asarray(samples_mv, dtype=np.float64)
    if fs <= 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    duration_s = len(signal) / fs
    if duration_s < MIN_DURATION_S:
        return _unusable(duration_s, f"strip too short ({duration_s:.1f} s < {MIN_DURATION_S:.0f} s)", started)
    if not np.all(np.isfinite(signal)):
        return _unusable(duration_s, "non-finite samples", started)
    if np.ptp(signal) < FLAT_PTP_MV:
        return _unusable(duration_s, "flat signal (lead off or asystole): needs review", started)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cleaned = nk.ecg_clean(signal, sampling_rate=fs)
            peakiness = _peakiness(cleaned, fs)
            _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, correct_artifacts=False)
            peaks = np.asarray(info["ECG_R_Peaks"], dtype=int)
        except Exception as exc:  # neurokit raises assorted errors on pathological input
            log.info("peak detection failed", extra={"error": str(exc)[:200]})
            return _unusable(duration_s, "no beats could be found", started)
        if len(peaks) < 3:
            return _unusable(duration_s, f"only {len(peaks)} beats found", started)
        try:
            quality_score = float(np.nanmean(nk.ecg_quality(cleaned, rpeaks=peaks, sampling_rate=fs)))
        except Exception:
            quality_score = 0.0
    quality_score = 0.0 if not np.isfinite(quality_score) else max(0.0, min(1.0, quality_score))
    if not peakiness >= NOISE_KURTOSIS or (peakiness < LOW_KURTOSIS and quality_score < 0.6):
        quality_score = min(quality_score, USABLE_QUALITY / 2)  # noise-like: beats found in it are not beats
    quality = "good" if quality_score >= GOOD_QUALITY else "acceptable" if quality_score >= USABLE_QUALITY \
        else "unusable"

    rr_s = np.diff(peaks) / fs
    rr_ms = rr_s * 1000
    inst_hr = 60.0 / rr_s
    median_rr = float(np.median(rr_s))
    irregularity = float(np.median(np.abs(np.diff(rr_s))) / median_rr) if len(rr_s) >= 3 else 0.0
    irregular = len(rr_s) >= 8 and irregularity > IRREGULAR_RATIO
    hr = 60.0 / float(np.mean(rr_s))
    diffs = np.diff(rr_ms)
    rhythm: Rhythm = classify_rhythm(hr, irregular) if quality != "unusable" else "inconclusive"
    return Analysis(
        quality=quality, quality_score=round(quality_score, 3), rhythm=rhythm, n_beats=len(peaks),
        duration_s=duration_s, r_peaks=peaks, hr_bpm=round(hr, 1),
        hr_min_bpm=round(float(inst_hr.min()), 1), hr_max_bpm=round(float(inst_hr.max()), 1),
        rr_mean_ms=round(float(rr_ms.mean()), 1),
        sdnn_ms=round(float(np.std(rr_ms, ddof=1)), 1) if len(rr_ms) >= 2 else None,
        rmssd_ms=round(float(np.sqrt(np.mean(diffs**2))), 1) if len(diffs) else None,
        pnn50=round(float(np.mean(np.abs(diffs) > 50)), 3) if len(diffs) else None,
        rr_irregularity=round(irregularity, 4), irregular=irregular, max_rr_s=round(float(rr_s.max()), 3),
        note="" if quality != "unusable" else "signal quality too poor for a rhythm reading",
        analysis_ms=(time.perf_counter() - started) * 1000,
    )
