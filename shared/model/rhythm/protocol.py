"""The validation protocol's strips and scores: what is tested, how it is labelled, how it is counted.

Pure (no training, no model): the harness (`bench/rhythm.py`) reads strips from here, runs the product's
analysis on them with a model that never saw their person, and scores the readings here.

* CinC 2017: each recording whole; the reading mapped to N / A / O / ~ (`labels.RHYTHM_TO_CINC`); F1 per
  class from the 4 × 4 confusion, the challenge's mean over N, A, O.
* Long records (MIT-BIH, VFDB): consecutive segments of `seconds`, labelled by the annotated rhythm
  covering ≥ 90 % of the segment, else "mixed" (counted apart, never scored).
* VT onsets (MIT-BIH): for every annotated VT episode holding ≥ 5 beats, the 16 s strip ending 1 s
  after its fifth beat; negatives are the 16 s strips tiled over every record that overlap no VT or
  ventricular-flutter episode and hold no run of ≥ 5 annotated ventricular beats.

A strip is "VT/VF reported" when the reading names VT or VF, or lists a VT/VF event or candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.ecg.annotations import Annotations

COVERAGE = 0.9
ONSET_STRIP_S = 16.0
ONSET_AFTER_FIFTH_S = 1.0
VT_EPISODE_MIN_BEATS = 5
V_SYMBOLS = frozenset("VE")
CINC_CLASSES = ("N", "A", "O", "~")
VTVF_LABELS = frozenset({"VT", "VFL", "VF", "VFIB"})
AF_LABELS = frozenset({"AFIB", "AFL"})


@dataclass(frozen=True)
class Segment:
    record: str
    start_s: float
    end_s: float
    label: str  # the annotated rhythm note covering ≥ 90 %, or "mixed"


@dataclass(frozen=True)
class OnsetStrip:
    record: str
    start_s: float
    end_s: float
    run_start_s: float  # first beat of the run, seconds from the strip start
    run_fifth_s: float  # its fifth beat


def label_segment(ann: Annotations, t0: float, t1: float) -> str:
    cover: dict[str, float] = {}
    for r in ann.rhythms:
        overlap = min(r.end_s, t1) - max(r.start_s, t0)
        if overlap > 0:
            cover[r.rhythm] = cover.get(r.rhythm, 0.0) + overlap
    if not cover:
        return "mixed"
    rhythm, seconds = max(cover.items(), key=lambda kv: kv[1])
    return rhythm if seconds >= COVERAGE * (t1 - t0) else "mixed"


def segments(ann: Annotations, seconds: float) -> list[Segment]:
    n = int(ann.duration_s // seconds)
    return [Segment(ann.record, k * seconds, (k + 1) * seconds, label_segment(ann, k * seconds, (k + 1) * seconds))
            for k in range(n)]


def _v_runs(ann: Annotations) -> list[tuple[float, float, int]]:
    """(first, last beat time, beats) of each run of consecutive annotated ventricular beats."""
    out: list[tuple[float, float, int]] = []
    times = ann.beat_times_s
    start = None
    for i, sym in enumerate(ann.beat_symbols):
        if sym in V_SYMBOLS:
            start = i if start is None else start
        elif start is not None:
            out.append((float(times[start]), float(times[i - 1]), i - start))
            start = None
    if start is not None:
        out.append((float(times[start]), float(times[-1]), len(times) - start))
    return out


def onset_strips(ann: Annotations) -> list[OnsetStrip]:
    """The 16 s strip ending 1 s after the fifth beat of every annotated VT episode with ≥ 5 beats."""
    out: list[OnsetStrip] = []
    times = ann.beat_times_s
    for ep in ann.episodes("VT"):
        inside = times[(times >= ep.start_s - 0.05) & (times < ep.end_s)]
        if len(inside) < VT_EPISODE_MIN_BEATS:
            continue
        end = float(inside[VT_EPISODE_MIN_BEATS - 1]) + ONSET_AFTER_FIFTH_S
        start = end - ONSET_STRIP_S
        if start < 0 or end > ann.duration_s:
            continue
        out.append(OnsetStrip(ann.record, round(start, 3), round(end, 3), round(float(inside[0]) - start, 3),
                              round(float(inside[VT_EPISODE_MIN_BEATS - 1]) - start, 3)))
    return out


def negative_strips(ann: Annotations) -> list[tuple[float, float]]:
    """16 s strips with no VT / ventricular-flutter episode and no run of ≥ 5 ventricular beats."""
    busy = [(r.start_s, r.end_s) for r in ann.rhythms if r.rhythm in ("VT", "VFL")]
    busy += [(a, b) for a, b, n in _v_runs(ann) if n >= VT_EPISODE_MIN_BEATS]
    out = []
    for k in range(int(ann.duration_s // ONSET_STRIP_S)):
        t0, t1 = k * ONSET_STRIP_S, (k + 1) * ONSET_STRIP_S
        if not any(a < t1 and b > t0 for a, b in busy):
            out.append((t0, t1))
    return out


# --- scores --------------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def cinc_scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """F1 per CinC class and the challenge's mean over N, A, O, from CinC labels (N/A/O/~)."""
    conf = np.zeros((4, 4), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        conf[CINC_CLASSES.index(t), CINC_CLASSES.index(p)] += 1
    f1 = {}
    for i, c in enumerate(CINC_CLASSES):
        denom = conf[i].sum() + conf[:, i].sum()
        f1[c] = round(2 * conf[i, i] / denom, 4) if denom else None
    nao = [float(v) for c in ("N", "A", "O") if (v := f1[c]) is not None]
    return {"f1": f1, "af_f1": f1["A"], "macro_f1_nao": round(float(np.mean(nao)), 4) if nao else None,
            "confusion": {"rows_truth_cols_reading": list(CINC_CLASSES), "matrix": conf.tolist()},
            "recordings": int(conf.sum())}


def binary_scores(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, Any]:
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    tp, fn = int(np.sum(t & p)), int(np.sum(t & ~p))
    tn, fp = int(np.sum(~t & ~p)), int(np.sum(~t & p))
    return {"se": _ratio(tp, tp + fn), "sp": _ratio(tn, tn + fp), "ppv": _ratio(tp, tp + fp),
            "tp": tp, "fn": fn, "tn": tn, "fp": fp}


def vtvf_reported(rhythm: str, events: Sequence[str], candidates: Sequence[str]) -> bool:
    return rhythm in ("vt", "vf") or bool({"vt", "vf"} & set(events)) or bool({"vt", "vf"} & set(candidates))


def vt_event_found(events: Sequence[tuple[str, float, float]], run_start_s: float, run_fifth_s: float,
                   tolerance_s: float = 0.5) -> bool:
    """A VT event overlapping the run's first five beats (strip seconds)."""
    return any(kind == "vt" and start <= run_fifth_s + tolerance_s and end >= run_start_s - tolerance_s
               for kind, start, end in events)
