"""Where signals come from: WFDB records (MIT-BIH), CSV files and a synthetic generator with episodes.

Every loader returns a `Signal` at the source's own rate; callers resample explicitly (`resample`).
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import wfdb

from shared.ecg.signal import Signal

log = logging.getLogger(__name__)

EpisodeKind = Literal["tachycardia", "bradycardia", "pause", "irregular"]


def load_wfdb(record: Path | str, *, lead: str = "MLII", start_s: float = 0, end_s: float | None = None) -> Signal:
    """Read one lead of a WFDB record (path without extension) between two times, at its own rate.

    The lead is chosen by name; records without it (MIT-BIH 102/104 have no MLII) fall back to lead 0,
    and the returned `Signal.lead` says which lead it really is.
    """
    path = str(record)
    try:
        header = wfdb.rdheader(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: no WFDB header ({path}.hea not found)") from None
    except Exception as exc:  # wfdb raises whatever its parser trips on: IndexError, KeyError, …
        raise ValueError(f"{path}: not a readable WFDB header ({type(exc).__name__}: {str(exc)[:120]})") from None
    fs = float(header.fs or 0)
    if not (np.isfinite(fs) and fs > 0) or not header.n_sig:
        raise ValueError(f"{path}: WFDB header without a sampling rate or signals")
    names = list(header.sig_name or [])
    if lead in names:
        channel = names.index(lead)
    else:
        channel = 0
        log.info("record %s has no lead %s; using lead 0 (%s)", path, lead, names[0] if names else "?")
    n = int(header.sig_len or 0)
    sampfrom = max(0, min(n, round(start_s * fs)))
    sampto = n if end_s is None else max(sampfrom, min(n, round(end_s * fs)))
    if sampto <= sampfrom:
        raise ValueError(f"empty window {start_s}–{end_s} s in {path} ({n / fs:.1f} s long)")
    try:
        rec = wfdb.rdrecord(path, sampfrom=sampfrom, sampto=sampto, channels=[channel])
        samples = np.asarray(rec.p_signal[:, 0], dtype=float)
    except Exception as exc:  # a short, missing or corrupt .dat file
        raise ValueError(f"{path}: signal data unreadable ({type(exc).__name__}: {str(exc)[:120]})") from None
    if len(samples) == 0:
        raise ValueError(f"{path}: no samples in {start_s}–{end_s} s")
    samples = np.nan_to_num(samples, nan=0.0)
    return Signal(samples, fs, names[channel] if names else f"lead{channel}", Path(path).name)


def load_csv(path: Path | str, fs: float | None = None) -> Signal:
    """Read a CSV with a header and columns `time_s,mv`; infer `fs` from the time column when not given."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file (expected a header 'time_s,mv')")
        columns = [c.strip().lower() for c in header]
        if "time_s" not in columns or "mv" not in columns:
            raise ValueError(f"{path}: header must name columns 'time_s' and 'mv', got {header!r}")
        ti, vi = columns.index("time_s"), columns.index("mv")
        times: list[float] = []
        values: list[float] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            try:
                times.append(float(row[ti]))
                values.append(float(row[vi]))
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{lineno}: expected numbers in time_s and mv, got {row!r}") from exc
    if len(values) < 2:
        raise ValueError(f"{path}: need at least 2 samples, got {len(values)}")
    samples = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{path}: mv column holds non-finite values")
    if fs is None:
        steps = np.diff(np.asarray(times))
        if np.any(steps <= 0):
            raise ValueError(f"{path}: time_s must increase strictly to infer the sampling rate")
        step = float(np.median(steps))
        if np.max(np.abs(steps - step)) > 0.1 * step:
            raise ValueError(f"{path}: time_s is not evenly spaced; pass fs explicitly")
        fs = 1.0 / step
    if not fs > 0:
        raise ValueError(f"{path}: sampling rate must be positive, got {fs!r}")
    return Signal(samples, float(fs), "csv", path.stem)


@dataclass(frozen=True)
class SyntheticEpisode:
    """An arrhythmia injected into a synthetic signal between `start_s` and `start_s + duration_s`."""

    kind: EpisodeKind
    start_s: float
    duration_s: float


#: Rates used for injected rate episodes (clearly over/under the detector thresholds).
TACHY_BPM = 150.0
BRADY_BPM = 35.0


def _simulate(duration_s: float, fs: float, heart_rate: float, seed: int) -> np.ndarray:
    import neurokit2 as nk  # heavy import, only needed here

    n = max(1, math.ceil(duration_s * fs))
    seconds = max(2, math.ceil(duration_s) + 1)
    x = nk.ecg_simulate(
        duration=seconds, sampling_rate=round(fs) if float(fs).is_integer() else fs,
        heart_rate=heart_rate, heart_rate_std=1, method="ecgsyn", noise=0.0, random_state=seed,
    )
    return np.asarray(x, dtype=float)[:n]


@lru_cache(maxsize=8)
def _beat_template(fs: float) -> tuple[np.ndarray, int]:
    """One clean simulated beat (P-QRS-T) and the index of its R peak, for placing beats at chosen times."""
    x = _simulate(8.0, fs, 60.0, seed=1)
    period = round(fs)
    start = 3 * period
    r = start + int(np.argmax(x[start:start + period]))
    lo, hi = r - int(0.3 * fs), r + int(0.55 * fs)
    beat = x[lo:hi] - np.median(x[lo:hi])
    taper = np.ones(len(beat))
    edge = max(1, int(0.04 * fs))
    ramp = np.linspace(0.0, 1.0, edge)
    taper[:edge], taper[-edge:] = ramp, ramp[::-1]
    return beat * taper, r - lo


def _place_beats(n: int, fs: float, r_times_s: Sequence[float], *, drop_p: bool = False) -> np.ndarray:
    """Overlap-add the beat template with its R peak at each time (sample 0 = time 0)."""
    beat, r_off = _beat_template(fs)
    if drop_p:  # AF has no P waves: blank the part before the QRS
        beat = beat.copy()
        beat[: max(0, r_off - int(0.08 * fs))] = 0.0
    out = np.zeros(n)
    for t in r_times_s:
        lo = round(t * fs) - r_off
        a, b = max(0, lo), min(n, lo + len(beat))
        if b > a:
            out[a:b] += beat[a - lo:b - lo]
    return out


def _episode(kind: EpisodeKind, n: int, fs: float, rng: np.random.Generator, seed: int) -> np.ndarray:
    duration = n / fs
    if kind == "tachycardia":
        return _simulate(duration, fs, TACHY_BPM, seed + 17)
    if kind == "pause":
        return np.zeros(n)
    if kind == "bradycardia":
        rr = 60.0 / BRADY_BPM
        return _place_beats(n, fs, [float(t) for t in np.arange(0.5, duration, rr)])
    # irregular: AF-like, RR drawn independently (no pattern), 0.35–1.2 s, no P waves, fibrillatory baseline
    times: list[float] = []
    t = 0.3
    while t < duration:
        times.append(t)
        t += float(rng.uniform(0.35, 1.2))
    f_waves = 0.04 * np.sin(2 * np.pi * 6.0 * np.arange(n) / fs + rng.uniform(0, 2 * np.pi))
    return _place_beats(n, fs, times, drop_p=True) + f_waves


def synthetic(
    duration_s: float,
    fs: float,
    *,
    heart_rate: float = 70,
    episodes: Sequence[SyntheticEpisode] = (),
    seed: int = 0,
) -> Signal:
    """Simulated sinus ECG (neurokit2 ECGSYN) with arrhythmia episodes spliced in, for tests and drills."""
    if not fs > 0 or not duration_s > 0:
        raise ValueError(f"duration_s and fs must be positive, got {duration_s!r}, {fs!r}")
    rng = np.random.default_rng(seed)
    n = math.ceil(duration_s * fs)
    x = _simulate(duration_s, fs, heart_rate, seed)
    fade = max(1, int(0.03 * fs))
    for episode in episodes:
        lo = max(0, round(episode.start_s * fs))
        hi = min(n, round((episode.start_s + episode.duration_s) * fs))
        if hi <= lo:
            continue
        segment = _episode(episode.kind, hi - lo, fs, rng, seed)
        # Short cross-fades avoid step artefacts that a QRS detector would count as beats.
        weight = np.ones(hi - lo)
        k = min(fade, (hi - lo) // 2)
        if k > 0:
            weight[:k] = np.linspace(0, 1, k)
            weight[-k:] = np.linspace(1, 0, k)
        x[lo:hi] = x[lo:hi] * (1 - weight) + segment * weight
    x = x + rng.normal(0.0, 0.01, n)
    return Signal(x, float(fs), "synthetic", f"synthetic-{seed}")
