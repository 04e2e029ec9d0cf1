"""Monitor events within a strip: what a bedside monitor would alarm on, with where, how many beats, how fast.

Pure: beats (times, ventricular flags), the strip's length and, when a rhythm reader ran, its per-frame
probabilities in; a list of `Event` out. Definitions (bedside-monitor conventions, e.g. the alarm set
of the PhysioNet/CinC 2015 challenge "Reducing false arrhythmia alarms in the ICU"):

* ``asystole`` — no QRS for ≥ 4 s (a gap between beats, or from the last beat to the strip's end);
* ``extreme_bradycardia`` — rate < 40 bpm over 5 consecutive beats;
* ``extreme_tachycardia`` — rate > 140 bpm over 17 consecutive beats;
* ``vt`` — ≥ 5 consecutive ventricular beats at > 100 bpm. A beat is ventricular when the beat model
  calls it V or when the reader's frame probability of VT (+VF) at it reaches its threshold: the beat
  model alone misses runs at a strip's start (no normal beats to compare with), the reader alone
  cannot count beats;
* ``vf`` — the reader's ventricular probability (VT + VF: it splits flutter between the two) at or above
  its threshold for ≥ 4 s, where the reader leans VF or the detectors found no regular fast beats (a
  regular fast run there is a VT event instead). Pauses and brady/tachycardia inside VF are dropped: in VF
  the detectors pick odd deflections;
* ``af`` — the reader's AF probability at or above its threshold for ≥ `AF_MIN_S`;
* ``pause`` — an RR interval of 2–4 s that ends in a beat (longer is asystole).

Every event has a `probability`: for reader events the mean calibrated probability over the event; for
beat events, the mean probability that the frames under it are readable signal (1 − p(noise)), or None
when no reader ran. Beats and rate agree by construction: for beat events `hr_bpm` is
60 × (beats − 1) / (end − start) over the event's own beats; VF and AF events start and end on frame
boundaries, and their `hr_bpm` is the rate of the detected beats inside (60 × (beats − 1) over the first
to last of them), which in VF is the rate of whatever the detectors picked, not a heart rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

EventType = Literal["asystole", "extreme_bradycardia", "extreme_tachycardia", "vt", "vf", "af", "pause"]

ASYSTOLE_S = 4.0
PAUSE_S = 2.0
BRADY_BPM, BRADY_BEATS = 40.0, 5
TACHY_BPM, TACHY_BEATS = 140.0, 17
VT_BPM, VT_BEATS = 100.0, 5
VF_MIN_S = 4.0
DISORGANISED_RR_CV = 0.25  # beats picked in VF are irregular; VT's are regular
AF_MIN_S = 10.0
SMOOTH_FRAMES = 3  # frame probabilities are averaged over this many frames (≈ 0.5 s) before thresholds


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    start_s: float
    end_s: float
    beats: int
    hr_bpm: float | None
    probability: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class FrameProbabilities:
    """The reader's per-frame probabilities of the classes events use (each (F,), frames of `frame_s`)."""

    frame_s: float
    vt: np.ndarray
    vf: np.ndarray
    af: np.ndarray
    noise: np.ndarray


def _smooth(p: np.ndarray) -> np.ndarray:
    if len(p) < SMOOTH_FRAMES:
        return p
    half = SMOOTH_FRAMES // 2  # edge-padded: an onset in the strip's last frames keeps its full weight
    padded = np.pad(p, (half, SMOOTH_FRAMES - 1 - half), mode="edge")
    return np.convolve(padded, np.ones(SMOOTH_FRAMES) / SMOOTH_FRAMES, mode="valid")


def _spans(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, end-exclusive) of each run of True."""
    if len(flags) == 0:
        return []
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _rate(times: np.ndarray) -> float | None:
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round(60.0 * (len(times) - 1) / float(times[-1] - times[0]), 1)


def _readable(frames: FrameProbabilities | None, start_s: float, end_s: float) -> float | None:
    if frames is None or len(frames.noise) == 0:
        return None
    a = int(np.clip(start_s / frames.frame_s, 0, len(frames.noise) - 1))
    b = int(np.clip(np.ceil(end_s / frames.frame_s), a + 1, len(frames.noise)))
    return round(float(1.0 - np.mean(frames.noise[a:b])), 3)


def _window_events(kind: EventType, t: np.ndarray, n_beats: int, test: np.ndarray,
                   frames: FrameProbabilities | None) -> list[Event]:
    """Merge every window of `n_beats` consecutive beats whose rate passes `test` into events."""
    if len(t) < n_beats:
        return []
    k = len(t) - n_beats + 1
    ok = test[:k]
    out: list[Event] = []
    for a, b in _spans(ok):
        first, last = a, b - 1 + n_beats - 1  # beat indices covered by windows a..b-1
        times = t[first:last + 1]
        out.append(Event(kind, round(float(times[0]), 2), round(float(times[-1]), 2), len(times), _rate(times),
                         _readable(frames, float(times[0]), float(times[-1]))))
    return out


def _window_rate(t: np.ndarray, n_beats: int) -> np.ndarray:
    """Rate (bpm) over each window of `n_beats` consecutive beats."""
    if len(t) < n_beats:
        return np.zeros(0)
    span = t[n_beats - 1:] - t[: len(t) - n_beats + 1]
    return np.where(span > 0, 60.0 * (n_beats - 1) / np.maximum(span, 1e-9), np.inf)


def _disorganised(beats: np.ndarray, p_vt: np.ndarray, p_vf: np.ndarray) -> bool:
    """VF rather than VT: the reader leans VF, or the detectors found no run of fast regular beats in it."""
    if float(np.mean(p_vf)) >= float(np.mean(p_vt)):
        return True
    rate = _rate(beats)
    if len(beats) < VT_BEATS or rate is None or rate <= VT_BPM:
        return True
    rr = np.diff(beats)
    return float(np.std(rr) / np.mean(rr)) > DISORGANISED_RR_CV


def ventricular_beats(t: np.ndarray, model_v: np.ndarray, frames: FrameProbabilities | None,
                      threshold: float) -> np.ndarray:
    """Per beat: ventricular by the beat model, or by the reader's VT+VF probability at the beat."""
    v = np.asarray(model_v, dtype=bool).copy()
    if frames is not None and len(frames.vt) and len(t):
        p = _smooth(frames.vt + frames.vf)
        idx = np.clip((t / frames.frame_s).astype(int), 0, len(p) - 1)
        v |= p[idx] >= threshold
    return v


def monitor_events(beat_times_s: np.ndarray, model_ventricular: np.ndarray, duration_s: float,
                   frames: FrameProbabilities | None = None, *, vt_beat: float = 0.5, vf_frame: float = 0.5,
                   af_frame: float = 0.5, lead_connected: bool = True) -> list[Event]:
    """Every monitor event in a strip, sorted by start time (see the module docstring)."""
    t = np.asarray(beat_times_s, dtype=float)
    events: list[Event] = []
    vf_spans: list[tuple[float, float]] = []
    if frames is not None and len(frames.vf):
        fs = frames.frame_s
        # ventricular activity (VT + VF: the reader splits flutter between them) for ≥ 4 s without organised
        # fast beats is VF; with them, the beats make it a VT event below
        ventricular = frames.vt + frames.vf
        for a, b in _spans(_smooth(ventricular) >= vf_frame):
            start, end = a * fs, min(duration_s, b * fs)
            inside = t[(t >= start) & (t <= end)]
            if end - start < VF_MIN_S or not _disorganised(inside, frames.vt[a:b], frames.vf[a:b]):
                continue
            events.append(Event("vf", round(start, 2), round(end, 2), len(inside), _rate(inside),
                                round(float(np.mean(ventricular[a:b])), 3)))
            vf_spans.append((start, end))
        for a, b in _spans(_smooth(frames.af) >= af_frame):
            start, end = a * fs, min(duration_s, b * fs)
            if end - start < AF_MIN_S:
                continue
            inside = t[(t >= start) & (t <= end)]
            events.append(Event("af", round(start, 2), round(end, 2), len(inside), _rate(inside),
                                round(float(np.mean(frames.af[a:b])), 3)))
    # gaps: asystole (≥ 4 s, also an open gap at the end) and pauses (2–4 s, closed by a beat)
    if lead_connected:
        edges = np.concatenate([[0.0], t, [float(duration_s)]]).astype(float)
        for i in range(len(edges) - 1):
            g0, g1 = float(edges[i]), float(edges[i + 1])
            gap = g1 - g0
            in_vf = sum(max(0.0, min(g1, e) - max(g0, s)) for s, e in vf_spans) >= 0.5 * gap  # VF, not a flat line
            closed = 0 < i < len(edges) - 2  # both ends are beats
            if gap >= ASYSTOLE_S and not in_vf:
                events.append(Event("asystole", round(g0, 2), round(g1, 2), 0, None, _readable(frames, g0, g1)))
            elif closed and PAUSE_S <= gap < ASYSTOLE_S:
                events.append(Event("pause", round(g0, 2), round(g1, 2), 2, round(60.0 / gap, 1),
                                    _readable(frames, g0, g1)))
    events += _window_events("extreme_bradycardia", t, BRADY_BEATS, _window_rate(t, BRADY_BEATS) < BRADY_BPM, frames)
    events += _window_events("extreme_tachycardia", t, TACHY_BEATS, _window_rate(t, TACHY_BEATS) > TACHY_BPM,
                             frames)
    # in VF the detectors pick odd deflections: their "pauses" and "bradycardia" are VF, not findings
    events = [e for e in events if e.type not in ("pause", "extreme_bradycardia", "extreme_tachycardia")
              or sum(max(0.0, min(e.end_s, b) - max(e.start_s, a)) for a, b in vf_spans)
              < 0.5 * max(e.end_s - e.start_s, 1e-6)]
    v = ventricular_beats(t, model_ventricular, frames, vt_beat)
    for a, b in _spans(v):
        times = t[a:b]
        rate = _rate(times)
        if len(times) >= VT_BEATS and rate is not None and rate > VT_BPM:
            prob = None
            if frames is not None and len(frames.vt):
                lo = int(np.clip(times[0] / frames.frame_s, 0, len(frames.vt) - 1))
                hi = int(np.clip(np.ceil(times[-1] / frames.frame_s), lo + 1, len(frames.vt)))
                prob = round(float(np.mean(frames.vt[lo:hi] + frames.vf[lo:hi])), 3)
            events.append(Event("vt", round(float(times[0]), 2), round(float(times[-1]), 2), len(times), rate, prob))
    return sorted(events, key=lambda e: (e.start_s, e.type))
