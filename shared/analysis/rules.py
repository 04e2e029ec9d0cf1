"""Rhythm rules: features of the RR series and the waveform → one label from the fixed vocabulary.

Order matters and is the clinical order of urgency: VF and asystole first (they have no organised
beats to measure), then sustained VT, then poor quality (→ inconclusive rather than a guess), then AF
(irregularly irregular RR *and* no repeating P wave, judged on normal-to-normal intervals only so that
ectopic beats do not fake irregularity), then a clearly irregular rhythm too short to call AF
(`other`: never named sinus), then SVT and the sinus rates. Thresholds were set on MIT-BIH
30 s segments (docs/phone-analysis.md gives the numbers and how to reproduce them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from shared.messages import Rhythm

# AF: irregularity features of the NN series (sinus: low; AF: high) and P-wave consistency
AF_NRMSSD = 0.10
AF_DRR = 0.09  # median |ΔRR| / median RR
AF_SAMPEN = 1.0
AF_TPR = (0.75, 1.25)  # turning points / expected for a random series
AF_VOTES = 3  # of the four irregularity features
AF_P_CONSISTENCY = 0.6  # P-window consistency at or above this = P waves present
MIN_NN_FOR_AF = 12
SHORT_AF_P_CONSISTENCY = 0.4  # stricter than AF_P_CONSISTENCY: a short series has fewer votes behind it
MIN_NN_FOR_IRREGULAR = 8  # with fewer, one odd interval moves two of the few |ΔRR| and so their median
# rates
TACHY_BPM = 100.0
BRADY_BPM = 60.0
SVT_BPM = 150.0
# ventricular
VT_RATE_BPM = 100.0
VT_MIN_RUN = 3
VT_SUSTAINED_FRACTION = 0.5  # run covering half the strip (or VT_SUSTAINED_S) → the rhythm is VT
VT_SUSTAINED_S = 10.0
WCT_QRS_MS = 130.0  # wide-complex tachycardia: median QRS of all beats at or above this, at ≥ VT_RATE_BPM
WCT_LF = 2.0  # …and slow QRS energy even in the strip's narrowest quarter of beats
# VF: one dominant frequency in 4–8 Hz holding most of the power, no organised QRS
VF_BAND_HZ = (3.5, 8.5)
VF_CONCENTRATION = 0.5
# pauses and asystole
PAUSE_S = 2.0
ASYSTOLE_S = 4.0


@dataclass(frozen=True, slots=True)
class RhythmFeatures:
    hr_bpm: float | None
    n_beats: int
    n_nn: int
    nrmssd: float | None
    drr: float | None
    sampen: float | None
    tpr: float | None
    p_consistency: float | None
    qrs_ms: float | None
    quality: str
    longest_vt_run: int
    vt_run_s: float
    duration_s: float
    vf_frequency_hz: float | None
    vf_concentration: float
    organised: bool  # the two QRS detectors agree on beats somewhere in the strip
    asystole_s: float  # longest stretch without beats where the lead is connected
    all_qrs_ms: float | None = None  # median QRS width over all beats, ventricular included
    lf_reference: float | None = None  # 25th percentile of the beats' lf_ratio


def sample_entropy(x: np.ndarray, m: int = 2, r_factor: float = 0.2) -> float | None:
    """SampEn(m, r = r_factor·SD) of a short series (vectorised, O(N²), fine for ≤ a few hundred beats)."""
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < m + 10 or np.std(x) == 0:
        return None
    r = r_factor * float(np.std(x))

    def _count(mm: int) -> int:
        emb = np.lib.stride_tricks.sliding_window_view(x, mm)[: n - m]
        dist = np.max(np.abs(emb[:, None, :] - emb[None, :, :]), axis=2)
        return int((np.sum(dist <= r) - len(emb)) // 2)

    b, a = _count(m), _count(m + 1)
    if a == 0 or b == 0:
        return 2.5 if b > 0 else None  # no (m+1)-matches: maximally irregular at this length
    return float(-np.log(a / b))


def turning_point_ratio(x: np.ndarray) -> float | None:
    """Turning points over the 2(N−2)/3 expected of a random series: ≈ 1 random, < 1 smooth/structured."""
    if len(x) < 5:
        return None
    d = np.diff(x)
    turns = int(np.sum(d[:-1] * d[1:] < 0))
    return turns / (2 * (len(x) - 2) / 3)


def irregularity(nn_s: np.ndarray) -> tuple[float | None, float | None, float | None, float | None]:
    """(normalised RMSSD, median |ΔRR|/median RR, sample entropy, turning-point ratio) of NN intervals."""
    if len(nn_s) < 4:
        return None, None, None, None
    d = np.diff(nn_s)
    nrmssd = float(np.sqrt(np.mean(d**2)) / np.mean(nn_s))
    drr = float(np.median(np.abs(d)) / np.median(nn_s))
    return round(nrmssd, 4), round(drr, 4), sample_entropy(nn_s), turning_point_ratio(nn_s)


def dominant_frequency(x: np.ndarray, fs: float) -> tuple[float | None, float]:
    """Peak frequency in 1–30 Hz and the share of 1–30 Hz power within ±1 Hz of it."""
    if len(x) < int(4 * fs):
        return None, 0.0
    f, pxx = sps.welch(x, fs=fs, nperseg=int(4 * fs))
    band = (f >= 1.0) & (f <= 30.0)
    if not np.any(band) or np.sum(pxx[band]) <= 0:
        return None, 0.0
    fb, pb = f[band], pxx[band]
    peak = float(fb[np.argmax(pb)])
    near = np.abs(fb - peak) <= 1.0
    return round(peak, 2), round(float(np.sum(pb[near]) / np.sum(pb)), 3)


def af_votes(ft: RhythmFeatures) -> int:
    votes = 0
    votes += ft.nrmssd is not None and ft.nrmssd > AF_NRMSSD
    votes += ft.drr is not None and ft.drr > AF_DRR
    votes += ft.sampen is not None and ft.sampen > AF_SAMPEN
    votes += ft.tpr is not None and AF_TPR[0] <= ft.tpr <= AF_TPR[1]
    return int(votes)


def classify(ft: RhythmFeatures) -> tuple[Rhythm, float, list[str]]:
    """The rhythm, a confidence in [0, 1] and notes on how it was reached."""
    notes: list[str] = []
    q = {"good": 1.0, "acceptable": 0.8}.get(ft.quality, 0.5)
    vf_like = (ft.vf_frequency_hz is not None and VF_BAND_HZ[0] <= ft.vf_frequency_hz <= VF_BAND_HZ[1]
               and ft.vf_concentration >= VF_CONCENTRATION)
    if vf_like and not ft.organised:
        notes.append(f"chaotic signal, dominant frequency {ft.vf_frequency_hz} Hz, no organised QRS")
        return "vf", round(min(1.0, 0.5 + ft.vf_concentration / 2), 2), notes
    if ft.asystole_s >= ASYSTOLE_S:
        notes.append(f"no QRS for {ft.asystole_s:.1f} s on a connected lead")
        return "asystole", round(0.7 + 0.3 * min(1.0, ft.asystole_s / 10), 2), notes
    sustained = ft.vt_run_s >= min(VT_SUSTAINED_S, VT_SUSTAINED_FRACTION * ft.duration_s)
    if ft.longest_vt_run >= VT_MIN_RUN and sustained:
        notes.append(f"sustained ventricular run of {ft.longest_vt_run} beats ({ft.vt_run_s:.1f} s)")
        return "vt", round(0.7 * q + 0.3 * min(1.0, ft.longest_vt_run / 20), 2), notes
    if (ft.hr_bpm is not None and ft.hr_bpm >= VT_RATE_BPM and ft.all_qrs_ms is not None
            and ft.all_qrs_ms >= WCT_QRS_MS and (ft.lf_reference or 0) >= WCT_LF and ft.quality != "unusable"):
        notes.append(f"wide-complex tachycardia (QRS {ft.all_qrs_ms:.0f} ms, {ft.hr_bpm:.0f} bpm) read as VT: "
                     "aberrant conduction cannot be excluded on one lead")
        return "vt", round(0.6 * q, 2), notes
    if ft.longest_vt_run >= VT_MIN_RUN:
        notes.append(f"non-sustained VT: run of {ft.longest_vt_run} ventricular beats")
    if ft.quality == "unusable" or ft.hr_bpm is None:
        notes.append("signal quality too poor for a rhythm reading")
        return "inconclusive", 0.0, notes
    votes = af_votes(ft)
    if ft.n_nn >= MIN_NN_FOR_AF and votes >= AF_VOTES:
        if ft.p_consistency is None or ft.p_consistency < AF_P_CONSISTENCY:
            p_term = 1.0 if ft.p_consistency is None else min(1.0, (AF_P_CONSISTENCY - ft.p_consistency) / 0.3 + 0.5)
            return "af", round(q * (0.6 + 0.1 * votes) * p_term, 2), notes
        notes.append("irregular RR but P waves repeat: ectopy or sinus arrhythmia, not AF")
        return "other", round(q * 0.6, 2), notes
    if ft.n_nn < MIN_NN_FOR_AF:
        notes.append(f"only {ft.n_nn} normal-to-normal intervals: irregularity not judged")
    if (ft.nrmssd is not None and ft.drr is not None and ft.nrmssd > AF_NRMSSD and ft.drr > AF_DRR
            and ft.n_nn >= MIN_NN_FOR_IRREGULAR):
        # too few intervals (or votes) for the AF rule, yet clearly irregular beat to beat: never sinus.
        # With no repeating P wave either, the two signs of AF a short strip can show are both there
        if ft.p_consistency is not None and ft.p_consistency < SHORT_AF_P_CONSISTENCY:
            notes.append(f"AF read on a short series ({ft.n_nn} NN intervals): irregular RR (NRMSSD "
                         f"{ft.nrmssd:.2f}, dRR {ft.drr:.2f}) and no repeating P wave ({ft.p_consistency:.2f})")
            return "af", round(q * 0.5, 2), notes
        notes.append(f"irregular RR (NRMSSD {ft.nrmssd:.2f}, dRR {ft.drr:.2f} over {ft.n_nn} NN intervals): "
                     "AF not confirmed, not excluded")
        return "other", round(q * 0.5, 2), notes
    hr = ft.hr_bpm
    regular_conf = q * (0.9 if votes <= 1 else 0.7)
    if hr > SVT_BPM:
        if ft.qrs_ms is not None and ft.qrs_ms > 120:
            notes.append("wide-complex tachycardia without ventricular beats flagged")
            return "other", round(q * 0.5, 2), notes
        return "svt", round(regular_conf, 2), notes
    if hr > TACHY_BPM:
        return "sinus_tachycardia", round(regular_conf, 2), notes
    if hr < BRADY_BPM:
        return "sinus_bradycardia", round(regular_conf, 2), notes
    return "sinus", round(regular_conf, 2), notes
