"""Record-relative beat features for tree models: what separates V from S from N across people is how a beat
differs from *this wearer's* usual beat and rhythm, not its absolute shape or rate.

Built from the watch's own per-beat arrays (`BeatSet`: the standardised waveform, its difference from the
wearer's running template, and the RR context of `shared.model.features`), and from medians over the whole
recording of the wearer: label-free, computed per wearer, so a watch computes them on its own beats alone.

- RR before, after and the local mean, each divided by the wearer's median RR; their log-ratios; RR
  irregularity (mean |ΔRR| over the last 10 intervals / the local mean) — it keeps AF beats from looking
  premature;
- the causal context ratios of `features.CONTEXT_NAMES` (prematurity against the running rhythm, QRS band
  energy and amplitude against the running medians);
- morphology against the wearer's median beat: correlation and RMS distance over the whole window and over
  ±100 ms around R; the size of the template difference; a QRS width proxy relative to the wearer's median;
- the standardised beat window itself, decimated to 62.5 Hz.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shared.ecg.signal import MODEL_FS
from shared.model.data import BeatSet
from shared.model.features import CONTEXT_NAMES, PRE

RR_COLUMNS = (CONTEXT_NAMES.index("pre_rr_s"), CONTEXT_NAMES.index("post_rr_s"), CONTEXT_NAMES.index("local_rr_s"))
RATIO_COLUMNS = tuple(i for i, n in enumerate(CONTEXT_NAMES) if n.startswith("log_"))
NEAR = round(0.1 * MODEL_FS)  # ±100 ms around R
DECIMATE = 4  # 250 Hz → 62.5 Hz
IRREGULAR_BEATS = 10

FEATURE_NAMES: tuple[str, ...] = (
    "pre_rel", "post_rel", "local_rel", "log_pre_post", "log_pre_localrel", "log_post_localrel", "irregularity",
    *(f"ctx_{CONTEXT_NAMES[i]}" for i in RATIO_COLUMNS),
    "corr_median", "rms_median", "corr_median_qrs", "rms_median_qrs", "template_diff_rms", "template_diff_qrs_max",
    "width_rel",
)


#: The compact set for sample-level DP (fixed a priori, from what separates V beats in the literature and in the
#: issue's error analysis — prematurity, irregularity, unlikeness to the wearer's beat near R, width): every
#: feature adds to a beat's sensitivity, so a DP model takes few.
DP_FEATURES: tuple[str, ...] = ("pre_rel", "post_rel", "log_pre_post", "irregularity", "corr_median_qrs",
                                "rms_median_qrs", "template_diff_qrs_max", "width_rel")


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean()
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum()) + 1e-9
    return np.asarray((a @ b) / denominator)


def _width(wave: np.ndarray) -> np.ndarray:
    """Samples within ±100 ms of R where the beat stays above half its peak there: a QRS width proxy."""
    near = np.abs(wave[:, PRE - NEAR:PRE + NEAR + 1])
    return np.asarray((near >= 0.5 * near.max(axis=1, keepdims=True)).sum(axis=1), dtype=np.float32)


def record_features(beats: BeatSet) -> np.ndarray:
    """(n beats, `n_features`) float32 for one wearer's recording; NaN where a value is unknown (trees cope)."""
    n = len(beats.y)
    if n == 0:
        return np.zeros((0, n_features()), dtype=np.float32)
    rr = beats.X_rr[:, RR_COLUMNS].astype(np.float64)
    pre, post, local = rr[:, 0], rr[:, 1], rr[:, 2]
    median_rr = float(np.nanmedian(pre)) if np.isfinite(pre).any() else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = rr / median_rr
        log_pre_post = np.log(pre / post)
        log_pre_local = np.log(rel[:, 0] / rel[:, 2])
        log_post_local = np.log(rel[:, 1] / rel[:, 2])
        steps = np.abs(np.diff(pre, prepend=np.nan))
        kernel = np.ones(IRREGULAR_BEATS) / IRREGULAR_BEATS
        running = np.convolve(np.nan_to_num(steps, nan=0.0), kernel, mode="full")[:n]
        irregularity = running / local
    wave = beats.X_wave[:, 0, :].astype(np.float64)
    median_beat = np.median(wave, axis=0)
    qrs = slice(PRE - NEAR, PRE + NEAR + 1)
    corr = _corr(wave, median_beat)
    rms = np.sqrt(((wave - median_beat) ** 2).mean(axis=1))
    corr_qrs = _corr(wave[:, qrs], median_beat[qrs])
    rms_qrs = np.sqrt(((wave[:, qrs] - median_beat[qrs]) ** 2).mean(axis=1))
    diff = beats.X_wave[:, 1, :].astype(np.float64)
    diff_rms = np.sqrt((diff ** 2).mean(axis=1))
    diff_qrs = np.abs(diff[:, qrs]).max(axis=1)
    width = _width(wave)
    width_rel = width / max(float(np.median(width)), 1.0)
    columns = [rel[:, 0], rel[:, 1], rel[:, 2], log_pre_post, log_pre_local, log_post_local, irregularity,
               *(beats.X_rr[:, i] for i in RATIO_COLUMNS),
               corr, rms, corr_qrs, rms_qrs, diff_rms, diff_qrs, width_rel]
    table = np.column_stack([*columns, wave[:, ::DECIMATE]]).astype(np.float32)
    table[~np.isfinite(table)] = np.nan
    return table


CORRELATION_COLUMNS = tuple(i for i, name in enumerate(FEATURE_NAMES) if name.startswith("corr"))


def as_distances(table: np.ndarray) -> np.ndarray:
    """`table` with each correlation c replaced by 1 − c: a public log-spaced grid (`shared.fl.gam`) resolves
    0.01 against 0.05 finely, 0.99 against 0.95 not at all — and that is where normal and ectopic beats part."""
    out = np.array(table, dtype=np.float64)
    out[:, list(CORRELATION_COLUMNS)] = 1.0 - out[:, list(CORRELATION_COLUMNS)]
    return out


def labelled_rows(beats: BeatSet, columns: Sequence[int] | None = None, *, distances: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One wearer's feature rows (`columns`, or all; correlations as 1 − c with `distances`) and labels 0 … 3, as
    a federated learner holds them: beats without a class label are left out."""
    table, y = record_features(beats), np.asarray(beats.y)
    if distances:
        table = as_distances(table)
    if columns is not None:
        table = table[:, list(columns)]
    keep = (y >= 0) & (y < 4)
    return table[keep], y[keep]


def n_features() -> int:
    from shared.model.features import WAVE_LEN

    return len(FEATURE_NAMES) + len(range(0, WAVE_LEN, DECIMATE))
