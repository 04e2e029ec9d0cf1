"""One rhythm for a strip: the learned reader names it, the rules cross-check it, candidates are never hidden.

Pure. Inputs: the reader's calibrated probabilities (or None when no reader is installed), the rules'
label and confidence (`shared.analysis.rules`), the measured heart rate, the monitor events. Output:
the rhythm in the product's vocabulary, its confidence, the candidates and the notes that make every
disagreement visible.

* The reader's class (its decision: calibrated probabilities plus the offsets tuned on training folds)
  becomes a rhythm with the measured rate: sinus → sinus / sinus_tachycardia /
  sinus_bradycardia; other → svt when the rules read svt, else other; noise → inconclusive.
* A strip with no readable segment (quality `unusable`) is `inconclusive` unless the reader reads VT/VF:
  a network names some rhythm for any input, white noise included; VF is the one rhythm that looks like noise.
* A hesitant reader (top probability < `HESITANT`, and not reading VT/VF) defers to confident rules
  (≥ `RULES_CONFIDENT`) when it gives the rules' class a fair chance (≥ `FAIR_CHANCE`): two readers
  half-agreeing beat one guessing. The confidence is then the rules' own (whoever decides gives it).
* Ventricular rhythms are named by the events: the reader splits organised and disorganised ventricular
  activity (flutter especially) between its VT and VF classes, the events judge organisation beat by beat.
  A VF event over half the strip or more makes the rhythm VF; a VT event over half the strip, VT.
* A strip readable only because it repeats itself (organised, no clean segment: `periodic_only`) names
  no ventricular rhythm: one lead cannot tell sinusoidal VT from periodic motion artefact. The reader's
  VT/VF stays a candidate with its probability (and its events stand), so the edge still escalates.
* Asystole is the rules' (no QRS for ≥ 4 s at the strip's end on a connected lead): no network is
  needed to see a flat line, and amplitude normalisation would hide one.
* Candidates: VT and VF whose probability (the strip's, or the highest over half a second of frames)
  reaches the reader's candidate threshold, the rules' own VT/VF readings, and VT/VF/asystole events.
  A strip nobody could read still says "possible VF, p = 0.34".
* Rules and reader disagree → a note says both (the edge and the report show it), never a silent pick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.analysis.events import Event
from shared.messages import Rhythm

TACHY_BPM = 100.0
BRADY_BPM = 60.0
HESITANT = 0.6
RULES_CONFIDENT = 0.7
FAIR_CHANCE = 0.3
CANDIDATE_FRAMES = 3  # frames (≈ 0.5 s) a frame probability is averaged over before it makes a candidate

#: Reader class → the coarse class the rules' labels are compared in.
_RULES_CLASS: dict[str, str] = {
    "sinus": "sinus", "sinus_tachycardia": "sinus", "sinus_bradycardia": "sinus", "af": "af", "afl": "af",
    "svt": "other", "other": "other", "vt": "vt", "vf": "vf", "asystole": "asystole", "inconclusive": "noise",
}


@dataclass(frozen=True, slots=True)
class CandidateRhythm:
    rhythm: str  # vt | vf | asystole
    probability: float
    source: str  # reader | rules | events


@dataclass(frozen=True, slots=True)
class Reading:
    rhythm: Rhythm
    confidence: float
    candidates: tuple[CandidateRhythm, ...]
    notes: tuple[str, ...]
    rules_rhythm: Rhythm


def rate_rhythm(hr_bpm: float | None) -> Rhythm:
    """Sinus named by its rate (the reader's class carries no rate)."""
    if hr_bpm is not None and hr_bpm > TACHY_BPM:
        return "sinus_tachycardia"
    if hr_bpm is not None and hr_bpm < BRADY_BPM:
        return "sinus_bradycardia"
    return "sinus"


def _from_reader(label: str, hr_bpm: float | None, rules: Rhythm) -> Rhythm:
    if label == "sinus":
        return rate_rhythm(hr_bpm)
    if label == "af":
        return "afl" if rules == "afl" else "af"
    if label == "other":
        return "svt" if rules == "svt" else "other"
    if label == "noise":
        return "inconclusive"
    return "vt" if label == "vt" else "vf"


def _ventricular_by_events(rhythm: Rhythm, events: list[Event], duration_s: float | None) -> Rhythm:
    if rhythm not in ("vt", "vf") or not duration_s:
        return rhythm
    cover = {t: sum(e.end_s - e.start_s for e in events if e.type == t) for t in ("vt", "vf")}
    for t in ("vf", "vt"):
        if cover[t] >= duration_s / 2 and cover[t] >= cover["vf" if t == "vt" else "vt"]:
            return t
    return rhythm


def peak_probability(frames: np.ndarray) -> float:
    """Highest probability held over `CANDIDATE_FRAMES` consecutive frames (one odd frame is not enough)."""
    if len(frames) == 0:
        return 0.0
    k = min(CANDIDATE_FRAMES, len(frames))
    return float(np.max(np.convolve(frames, np.ones(k) / k, mode="valid")))


def _merge(cands: list[CandidateRhythm]) -> tuple[CandidateRhythm, ...]:
    best: dict[str, CandidateRhythm] = {}
    for c in cands:
        if c.rhythm not in best or c.probability > best[c.rhythm].probability:
            best[c.rhythm] = c
    order = {"vf": 0, "vt": 1, "asystole": 2}
    return tuple(sorted(best.values(), key=lambda c: order[c.rhythm]))


def combine(probabilities: dict[str, float] | None, frame_vt: np.ndarray, frame_vf: np.ndarray, *,
            candidate_threshold: float, rules: Rhythm, rules_confidence: float, hr_bpm: float | None,
            events: list[Event], asystole: bool, label: str | None = None, unreadable: bool = False,
            periodic_only: bool = False, duration_s: float | None = None) -> Reading:
    """The strip's reading (see the module docstring)."""
    notes: list[str] = []
    cands: list[CandidateRhythm] = []
    if rules in ("vt", "vf"):
        cands.append(CandidateRhythm(rules, round(rules_confidence, 3), "rules"))
    for e in events:
        if e.type in ("vt", "vf", "asystole"):
            cands.append(CandidateRhythm(e.type, 1.0 if e.probability is None else e.probability, "events"))
    if probabilities is None:
        rhythm, confidence = rules, rules_confidence
        notes.append("no rhythm reader installed: rhythm from the signal-processing rules alone")
    else:
        for name, frames in (("vt", frame_vt), ("vf", frame_vf)):
            p = max(probabilities.get(name, 0.0), peak_probability(frames))
            if p >= candidate_threshold:
                cands.append(CandidateRhythm(name, round(p, 3), "reader"))
        label = label or max(probabilities, key=lambda k: probabilities[k])
        rhythm, confidence = _from_reader(label, hr_bpm, rules), probabilities[label]
        coarse = _RULES_CLASS[rules]
        if unreadable and label not in ("vt", "vf"):
            if rhythm != "inconclusive":
                notes.append(f"no readable segment: the learned reader's {label} (p = {confidence:.2f}) is not "
                             "reported")
            rhythm = "inconclusive"
        elif (label not in ("vt", "vf") and coarse != _RULES_CLASS[rhythm] and coarse in probabilities
              and confidence < HESITANT
              and rules_confidence >= RULES_CONFIDENT and probabilities[coarse] >= FAIR_CHANCE):
            notes.append(f"the learned reader hesitated ({label} p = {confidence:.2f}, {coarse} "
                         f"p = {probabilities[coarse]:.2f}): the rules' {rules} ({rules_confidence:.2f}) decides")
            rhythm, confidence = rules, rules_confidence
        named = _ventricular_by_events(rhythm, events, duration_s)
        if named != rhythm:
            notes.append(f"the learned reader read {rhythm}; the monitor events name it {named}")
            rhythm = named
        if periodic_only and rhythm in ("vt", "vf"):
            notes.append(f"the learned reader read {rhythm} (p = {confidence:.2f}) on a strip with no clean segment: "
                         "sinusoidal VT or periodic artefact, which one lead cannot tell apart")
            cands.append(CandidateRhythm(rhythm, round(confidence, 3), "reader"))
            rhythm, confidence = "inconclusive", 0.0
        if asystole:
            rhythm, confidence = "asystole", max(confidence, rules_confidence)
        if _RULES_CLASS[rules] != _RULES_CLASS[rhythm] and not (unreadable and label not in ("vt", "vf")):
            notes.append(f"rules read {rules} ({rules_confidence:.2f}); the learned reader read {label} "
                         f"(p = {probabilities[label]:.2f})")
    merged = _merge(cands)
    for c in merged:
        if c.rhythm != rhythm:
            notes.append(f"possible {c.rhythm.upper() if c.rhythm != 'asystole' else 'asystole'} "
                         f"(p = {c.probability:.2f}, {c.source})")
    return Reading(rhythm, round(float(confidence), 3), merged, tuple(notes), rules)
