"""The phone's local ECG analysis of a strip, to clinical depth (neurokit2 underneath; `fs` always explicit).

Pipeline: sanity checks (length, finite, lead off) → resample to 250 Hz (every rule then works in one
time base, whatever the watch sent: 128–1000 Hz) → clean → beats from two independent detectors
(neurokit2's and `StreamingQrsDetector`, whose per-beat `lf_ratio` marks ventricular beats) →
per-segment quality from their agreement → ectopy → RR statistics, HRV → intervals by wavelet
delineation → rhythm rules (`shared.analysis.rules`). A strip the signal does not support gets
`inconclusive` and says why in `notes`, never a guess.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field, replace

import neurokit2 as nk
import numpy as np

from shared.analysis import rules
from shared.analysis.ectopy import V_CLASS, BeatFeatures, active_shared_model, classify_beats
from shared.analysis.events import Event, FrameProbabilities, monitor_events
from shared.analysis.intervals import Intervals, measure_intervals, p_wave_consistency, qrs_bounds
from shared.analysis.quality import SegmentQuality, assess_segments, is_lead_off, overall_quality
from shared.analysis.reading import CandidateRhythm, combine
from shared.ecg.qrs import Beat, StreamingQrsDetector
from shared.ecg.signal import Signal, resample
from shared.messages import Rhythm
from shared.model.rhythm.reader import RhythmReader, RhythmReading, active_reader

log = logging.getLogger(__name__)

METHOD = f"neurokit2-{nk.__version__}"
ANALYSIS_FS = 250.0
MIN_DURATION_S = 5.0
HRV_FREQ_MIN_S = 60.0
MATCH_S = 0.1
MIN_READER_S = 2.0
MERGE_GAP_S = 0.25  # a streaming-detector beat this far from every neurokit peak is a beat neurokit missed


@dataclass(frozen=True, slots=True)
class Analysis:
    """Findings on one strip. Fields named like `AnalysisPayload`'s are what goes on the bus."""

    quality: str  # good | acceptable | unusable
    quality_score: float
    rhythm: Rhythm
    n_beats: int
    duration_s: float
    r_peaks: np.ndarray  # sample indices at the caller's fs
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
    analysis_ms: float = 0.0
    rhythm_confidence: float | None = None
    pr_ms: float | None = None
    pr_beats: int | None = None
    qrs_ms: float | None = None
    qrs_beats: int | None = None
    qt_ms: float | None = None
    qt_beats: int | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    pauses: int | None = None
    ectopic_beats: int | None = None
    ectopic_burden: float | None = None
    ventricular_run_beats: int | None = None  # any rate (an idioventricular run counts)
    vt_run_beats: int | None = None  # at ≥ 100 bpm: what the edge treats as (non-sustained) VT
    hrv_freq: dict[str, float] | None = None
    segment_quality: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    # local detail, not on the bus
    ventricular: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    ectopic: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # S, V or F (V only by the rule)
    segments: list[SegmentQuality] = field(default_factory=list)
    features: rules.RhythmFeatures | None = None
    ectopy_method: str = ""
    # the learned reader and monitor events (issue 13)
    events: list[Event] = field(default_factory=list)
    candidates: list[CandidateRhythm] = field(default_factory=list)
    rhythm_probabilities: dict[str, float] | None = None
    rules_rhythm: Rhythm | None = None
    reader: str | None = None
    reading: RhythmReading | None = None  # local detail: per-frame probabilities
    periodic_only: bool = False  # readable only because it repeats: sinusoidal VT or periodic artefact

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


def _unusable(duration_s: float, note: str, started: float, *, segments: list[str] | None = None) -> Analysis:
    return Analysis(quality="unusable", quality_score=0.0, rhythm="inconclusive", n_beats=0, duration_s=duration_s,
                    r_peaks=np.array([], dtype=int), rhythm_confidence=0.0, notes=[note], segment_quality=segments,
                    analysis_ms=(time.perf_counter() - started) * 1000)


def _nearest(sorted_a: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into `sorted_a` of the nearest element to each value, and the distance."""
    if len(sorted_a) == 0:
        return np.zeros(len(values), dtype=int), np.full(len(values), np.inf)
    idx = np.clip(np.searchsorted(sorted_a, values), 0, len(sorted_a) - 1)
    prev = np.clip(idx - 1, 0, len(sorted_a) - 1)
    use_prev = np.abs(sorted_a[prev] - values) < np.abs(sorted_a[idx] - values)
    best = np.where(use_prev, prev, idx)
    return best, np.abs(sorted_a[best] - values)


def _quiet(x: np.ndarray, fs: float, event: Event, frames: FrameProbabilities | None) -> bool:
    """An asystole gap is quiet signal, not noise the detectors could not read: the reader says readable
    when it ran, else the gap stays under 1 mV peak to peak."""
    if frames is not None and event.probability is not None:
        return event.probability >= 0.5
    # the gap between two R peaks, without the QRS complexes that bound it
    seg = x[int((event.start_s + 0.2) * fs):int((event.end_s - 0.2) * fs)]
    return len(seg) > 1 and not is_lead_off(seg) and float(np.ptp(seg)) < 1.0


def _fast_v_runs(v: np.ndarray, samples: np.ndarray, fs: float) -> list[tuple[int, int]]:
    """(start, end-exclusive) of each run of ≥ `rules.VT_MIN_RUN` V beats at ≥ `rules.VT_RATE_BPM`: what VT is."""
    return [(a, b) for a, b in _runs(v) if b - a >= rules.VT_MIN_RUN
            and 60.0 / float(np.median(np.diff(samples[a:b]) / fs)) >= rules.VT_RATE_BPM]


def _in_fast_v_run(v: np.ndarray, samples: np.ndarray, fs: float) -> np.ndarray:
    """Which beats belong to a fast V run (`_fast_v_runs`).

    Such beats explain a disagreement between the detectors (neurokit misses wide complexes); an isolated
    V call, or slow wide beats (paced), do not.
    """
    out = np.zeros(len(v), dtype=bool)
    for a, b in _fast_v_runs(v, samples, fs):
        out[a:b] = True
    return out


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end-exclusive) of each run of True."""
    out: list[tuple[int, int]] = []
    start = None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def _hrv_frequency(nn_ms: np.ndarray, nn_t_s: np.ndarray) -> dict[str, float] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = nk.hrv_frequency({"RRI": nn_ms, "RRI_Time": nn_t_s}, sampling_rate=1000)
        except Exception as exc:
            log.info("frequency-domain HRV failed", extra={"error": str(exc)[:200]})
            return None
    out: dict[str, float] = {}
    for key, column in (("lf", "HRV_LF"), ("hf", "HRV_HF"), ("lf_hf", "HRV_LFHF"), ("lf_nu", "HRV_LFn"),
                        ("hf_nu", "HRV_HFn"), ("total_power", "HRV_TP")):
        value = float(table[column].iloc[0]) if column in table else float("nan")
        if np.isfinite(value):
            out[key] = round(value, 4)
    return out or None


def _detect(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Beat]]:
    """(cleaned, neurokit peaks, streaming-detector samples, streaming lf_ratios, streaming beats)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cleaned = np.asarray(nk.ecg_clean(x, sampling_rate=fs), dtype=float)
        try:
            _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, correct_artifacts=False)
            peaks = np.unique(np.asarray(info["ECG_R_Peaks"], dtype=int))
        except Exception as exc:  # neurokit raises assorted errors on pathological input
            log.info("neurokit peak detection failed", extra={"error": str(exc)[:200]})
            peaks = np.array([], dtype=int)
    detector = StreamingQrsDetector(fs)
    flush = np.full(int(1.0 * fs), x[-1])  # the detector judges peaks with a look-ahead: flush the end
    beats = [b for b in detector.feed(np.concatenate([x, flush])) if b.sample < len(x)]
    sq = np.array([b.sample for b in beats], dtype=int)
    lf = np.array([np.nan if b.lf_ratio is None else b.lf_ratio for b in beats], dtype=float)
    return cleaned, peaks, sq, lf, beats


def measure_strip(samples_mv: np.ndarray, fs: float) -> Analysis:
    """The signal processing of one strip (mV at `fs` Hz) with the rules' rhythm; `with_reader` completes it."""
    started = time.perf_counter()
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, got {fs}")
    raw = np.asarray(samples_mv, dtype=np.float64).ravel()
    duration_s = len(raw) / fs
    if duration_s < MIN_DURATION_S:
        return _unusable(duration_s, f"strip too short ({duration_s:.1f} s < {MIN_DURATION_S:.0f} s)", started)
    if not np.all(np.isfinite(raw)):
        return _unusable(duration_s, "non-finite samples", started)
    if is_lead_off(raw):
        return _unusable(duration_s, "flat line: lead off (or asystole with a dead lead) — check the patient",
                         started)
    x = resample(Signal(raw, float(fs), "strip", "strip"), ANALYSIS_FS).samples_mv
    afs = ANALYSIS_FS
    cleaned, peaks, sq, sq_lf, sq_beats = _detect(x, afs)
    # the shared beat model (when present) classifies the streaming detector's beats, as it was trained to
    shared = active_shared_model()
    sq_classes = shared.classes(x, afs, tuple(sq_beats)) if shared is not None else None
    segments = assess_segments(x, cleaned, afs, peaks, sq,
                               None if sq_classes is None else _in_fast_v_run(sq_classes == V_CLASS, sq, afs))
    quality, quality_score = overall_quality(segments)
    labels = [s.label for s in segments]
    notes: list[str] = []
    # neurokit misses some fast wide beats (VT runs) that the streaming detector finds: take those too,
    # where the segment is readable (in noise the detectors' disagreement is the point, not a beat), and
    # beats the shared model calls V in any segment with a connected, unclipped lead: neurokit's misses in
    # a run of fast wide beats are what make such a segment "unusable" in the first place
    if len(sq):
        _, far = _nearest(peaks, sq)
        seg_sq = np.minimum((sq / afs / (duration_s / len(segments))).astype(int), len(segments) - 1)
        take = np.array([labels[k] != "unusable" for k in seg_sq], dtype=bool)
        if sq_classes is not None:
            connected = np.array([not (segments[k].lead_off or segments[k].saturated) for k in seg_sq], dtype=bool)
            take |= (sq_classes == V_CLASS) & connected
        extra = sq[(far > MERGE_GAP_S * afs) & take]
        if len(extra):
            peaks = np.sort(np.concatenate([peaks, extra]))

    # per-beat ventricular / ectopic flags: the shared beat model on the streaming detector's beats when a
    # model is present, else the wide-beat rule on the matched streaming-detector beat's lf_ratio
    idx, dist = _nearest(sq, peaks)
    lf = np.where(dist <= MATCH_S * afs, sq_lf[idx] if len(sq) else np.nan, np.nan)
    rr_prev = np.concatenate([[np.nan], np.diff(peaks) / afs]) if len(peaks) else np.zeros(0)
    flags, ectopy_method = classify_beats(BeatFeatures(peaks, afs, lf, rr_prev, x, tuple(sq_beats), sq_classes))
    ventricular = flags.ventricular
    seg_of = np.minimum((peaks / afs / (duration_s / len(segments))).astype(int), len(segments) - 1)
    readable = np.array([labels[k] != "unusable" for k in seg_of], dtype=bool)

    # organised activity, VF, asystole: judged before the quality gate (VF looks like noise to it)
    organised = any(s.label == "usable" and s.bsqi >= 0.9 for s in segments)
    band = x - np.convolve(x, np.ones(int(0.5 * afs)) / int(0.5 * afs), mode="same")
    vf_hz, vf_conc = rules.dominant_frequency(band, afs)
    # asystole: no QRS from the last beat (or the start) to the end of the strip; a gap that ends in a
    # beat is a pause (counted in `pauses`), not asystole
    asystole_s = 0.0
    last = int(peaks[-1]) if len(peaks) else 0
    for lo, hi in ((last, len(x)),):
        g = (hi - lo) / afs
        quiet = not np.any((sq > lo + 0.2 * afs) & (sq < hi - 0.2 * afs))  # neither detector saw a QRS
        if quiet and hi - lo > 1 and not is_lead_off(x[lo:hi]) and np.ptp(x[lo:hi]) < 1.0:
            asystole_s = float(g)

    n = len(peaks)
    rr = np.diff(peaks) / afs if n >= 2 else np.zeros(0)
    # NN: both ends conducted beats in readable segments
    nn_mask = (~ventricular[1:] & ~ventricular[:-1] & readable[1:] & readable[:-1]) if n >= 2 else np.zeros(0, bool)
    nn = rr[nn_mask]
    nrmssd, drr, sampen, tpr = rules.irregularity(nn)
    conducted = ~ventricular & readable
    p_cons = p_wave_consistency(cleaned, afs, peaks, conducted)
    intervals = measure_intervals(cleaned, afs, peaks, conducted, rr_prev) if quality != "unusable" else Intervals()

    fast_runs = _fast_v_runs(ventricular, peaks, afs)
    longest_any = max((b - a for a, b in _runs(ventricular)), default=0)
    longest = max(fast_runs, key=lambda r: r[1] - r[0], default=None)
    run_beats = 0 if longest is None else longest[1] - longest[0]
    run_s = 0.0 if longest is None else float((peaks[longest[1] - 1] - peaks[longest[0]]) / afs)

    usable_rr = rr[readable[1:] & readable[:-1]] if n >= 2 else rr
    hr = 60.0 / float(np.mean(usable_rr)) if len(usable_rr) else None
    on, off = qrs_bounds(cleaned, afs, peaks[readable])
    widths = (off - on) * 1000 / afs
    wide_qrs = float(np.nanmedian(widths)) if np.any(np.isfinite(widths)) else None
    lf_reference = float(np.nanpercentile(lf, 25)) if np.any(np.isfinite(lf)) else None
    features = rules.RhythmFeatures(
        hr_bpm=hr, n_beats=n, n_nn=len(nn), nrmssd=nrmssd, drr=drr, sampen=sampen, tpr=tpr, p_consistency=p_cons,
        qrs_ms=intervals.qrs_ms, quality=quality, longest_vt_run=run_beats, vt_run_s=run_s, duration_s=duration_s,
        vf_frequency_hz=vf_hz, vf_concentration=vf_conc, organised=organised, asystole_s=asystole_s,
        all_qrs_ms=wide_qrs, lf_reference=lf_reference,
    )
    label, confidence, rule_notes = rules.classify(features)
    notes += rule_notes
    periodic_only = any(s.organised for s in segments) and not any(s.label == "usable" for s in segments)
    if label not in ("vf", "asystole", "inconclusive") and periodic_only:
        # readable only because it repeats itself: on one lead, sinusoidal VT and periodic motion artefact
        # look alike, so no rhythm is named (the edge keeps the watch's level; a model-called run still counts)
        notes.append(f"organised fast activity with no clean segment ({label} by the rules): sinusoidal VT "
                     "or periodic artefact, which one lead cannot tell apart")
        label, confidence = "inconclusive", 0.0
    if quality != "good":
        notes.append(f"quality {quality}: {labels.count('unusable')} of {len(labels)} segments unusable")

    pauses = int(np.sum(rr > rules.PAUSE_S))
    hrv_freq = None
    if len(nn) >= 4:
        if duration_s >= HRV_FREQ_MIN_S:
            t_nn = peaks[1:][nn_mask] / afs
            hrv_freq = _hrv_frequency(nn * 1000, t_nn)
        else:
            notes.append(f"frequency-domain HRV needs ≥ {HRV_FREQ_MIN_S:.0f} s (strip is {duration_s:.0f} s)")
    smooth_hr = 60.0 / np.convolve(usable_rr, np.ones(5) / 5, mode="valid") if len(usable_rr) >= 5 else \
        (60.0 / usable_rr if len(usable_rr) else np.zeros(0))
    d_nn = np.diff(nn * 1000)
    ectopic = int(np.sum(flags.ectopic))
    return Analysis(
        quality=quality, quality_score=quality_score, rhythm=label, n_beats=n, duration_s=duration_s,
        r_peaks=np.round(peaks * fs / afs).astype(int),
        hr_bpm=None if hr is None else round(hr, 1),
        hr_min_bpm=round(float(smooth_hr.min()), 1) if len(smooth_hr) else None,
        hr_max_bpm=round(float(smooth_hr.max()), 1) if len(smooth_hr) else None,
        rr_mean_ms=round(float(np.mean(usable_rr)) * 1000, 1) if len(usable_rr) else None,
        sdnn_ms=round(float(np.std(nn * 1000, ddof=1)), 1) if len(nn) >= 2 else None,
        rmssd_ms=round(float(np.sqrt(np.mean(d_nn**2))), 1) if len(d_nn) else None,
        pnn50=round(float(np.mean(np.abs(d_nn) > 50)), 3) if len(d_nn) else None,
        rr_irregularity=drr, irregular=rules.af_votes(features) >= rules.AF_VOTES and len(nn) >= rules.MIN_NN_FOR_AF,
        max_rr_s=round(float(rr.max()), 3) if len(rr) else None,
        rhythm_confidence=confidence,
        pr_ms=intervals.pr_ms, pr_beats=intervals.pr_beats, qrs_ms=intervals.qrs_ms, qrs_beats=intervals.qrs_beats,
        qt_ms=intervals.qt_ms, qt_beats=intervals.qt_beats, qtc_bazett_ms=intervals.qtc_bazett_ms,
        qtc_fridericia_ms=intervals.qtc_fridericia_ms,
        pauses=pauses, ectopic_beats=ectopic, ectopic_burden=round(ectopic / n, 4) if n else None,
        ventricular_run_beats=int(longest_any), vt_run_beats=int(run_beats), hrv_freq=hrv_freq,
        segment_quality=labels, notes=notes[:16],
        ventricular=ventricular, ectopic=flags.ectopic, segments=segments, features=features,
        ectopy_method=ectopy_method, rules_rhythm=label, periodic_only=periodic_only,
        analysis_ms=(time.perf_counter() - started) * 1000,
    )


class _Active:
    """Sentinel: use the process's active reader (`shared.model.rhythm.reader.active_reader`)."""


ACTIVE = _Active()


def analyze_strip(samples_mv: np.ndarray, fs: float, *, reader: RhythmReader | _Active | None = ACTIVE) -> Analysis:
    """Analyse one single-lead strip (mV at `fs` Hz): signal processing, then the learned reader and events.

    Never raises on bad signal: it says `unusable` instead. `reader=None` reads with the rules alone.
    """
    measured = measure_strip(samples_mv, fs)
    return with_reader(measured, samples_mv, fs, active_reader() if isinstance(reader, _Active) else reader)


def with_reader(measured: Analysis, samples_mv: np.ndarray, fs: float, reader: RhythmReader | None) -> Analysis:
    """The rules-only analysis (`measure_strip`) completed by a reader: rhythm, candidates, monitor events.

    Split from `measure_strip` so a validation run measures each strip once and reads it with many models.
    """
    started = time.perf_counter()
    raw = np.asarray(samples_mv, dtype=np.float64).ravel()
    duration_s = measured.duration_s
    if measured.features is None:  # too short, non-finite, flat: nothing for a reader either
        return measured
    # the reader takes the analysis's beats (both detectors merged) rather than finding them again
    reading = reader.read(raw, fs, measured.r_peaks / fs) if reader is not None and duration_s >= MIN_READER_S \
        else None
    frames = None if reading is None else FrameProbabilities(
        reading.frame_s, reading.frame_column("vt"), reading.frame_column("vf"), reading.frame_column("af"),
        reading.frame_column("noise"))
    thresholds = reading.thresholds if reading is not None else None
    # VT events: a beat is ventricular when the beat model (or the wide-beat rule) calls it V, or when the
    # reader's VT+VF probability at it reaches its threshold. Reader-only events found none of 11 held-out
    # MIT-BIH runs (its frames are learned from long rhythms, not 5-beat salvos): never hide a VT (ADR 0010)
    events = monitor_events(
        measured.r_peaks / fs, measured.ventricular, duration_s, frames,
        **({} if thresholds is None else {"vt_beat": thresholds.vt_beat, "vf_frame": thresholds.vf_frame,
                                          "af_frame": thresholds.af_frame}),
        lead_connected=True)  # measure_strip has already returned early on a lead-off strip
    events = [e for e in events if e.type != "asystole" or _quiet(raw, fs, e, frames)]
    rules_label = measured.rhythm
    rules_confidence = measured.rhythm_confidence or 0.0
    combined = combine(
        None if reading is None else reading.probabilities,
        np.zeros(0) if frames is None else frames.vt, np.zeros(0) if frames is None else frames.vf,
        candidate_threshold=1.0 if thresholds is None else thresholds.candidate,
        rules=rules_label, rules_confidence=rules_confidence, hr_bpm=measured.hr_bpm, events=events,
        asystole=measured.features.asystole_s >= rules.ASYSTOLE_S, label=None if reading is None else reading.label,
        unreadable=measured.quality == "unusable", periodic_only=measured.periodic_only,
        duration_s=measured.duration_s)
    return replace(
        measured, rhythm=combined.rhythm, rhythm_confidence=combined.confidence,
        notes=[*combined.notes, *measured.notes][:16], events=events, candidates=list(combined.candidates),
        rhythm_probabilities=None if reading is None else reading.probabilities, rules_rhythm=rules_label,
        reader=None if reading is None else reading.model, reading=reading,
        analysis_ms=measured.analysis_ms + (time.perf_counter() - started) * 1000)


def warm_up() -> float:
    """Load everything the first analysis would (neurokit, torch, the beat model, the reader file) now, not
    when the first alert is waiting; the seconds it took. Never raises: a failure is logged, and the first
    real analysis will say what is wrong."""
    started = time.perf_counter()
    try:
        analyze_strip(np.sin(np.linspace(0, 60, 2500)), 250.0)
    except Exception:
        log.exception("analysis warm-up failed")
    return time.perf_counter() - started
