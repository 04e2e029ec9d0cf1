"""Monitor events from beats and frame probabilities (pure: no signal, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.analysis.events import FrameProbabilities, monitor_events, ventricular_beats

FRAME_S = 0.16


def _beats(rate_bpm: float, start: float, end: float) -> np.ndarray:
    return np.arange(start, end, 60.0 / rate_bpm)


def _frames(duration_s: float, **spans: tuple[float, float, float]) -> FrameProbabilities:
    """Frame probabilities: zeros except `name=(start_s, end_s, p)` spans."""
    n = int(np.ceil(duration_s / FRAME_S))
    cols = {k: np.zeros(n) for k in ("vt", "vf", "af", "noise")}
    for name, (a, b, p) in spans.items():
        cols[name][int(a / FRAME_S):int(np.ceil(b / FRAME_S))] = p
    return FrameProbabilities(FRAME_S, cols["vt"], cols["vf"], cols["af"], cols["noise"])


def _types(events: list) -> list[str]:
    return [e.type for e in events]


def test_a_regular_sinus_strip_has_no_events() -> None:
    t = _beats(72, 0.3, 30)
    assert monitor_events(t, np.zeros(len(t), bool), 30.0, _frames(30.0)) == []


def test_asystole_at_the_end_and_a_pause_between_beats() -> None:
    t = np.concatenate([_beats(60, 0.5, 10), [12.6], _beats(60, 13.6, 20)])
    events = monitor_events(t, np.zeros(len(t), bool), 26.0)
    kinds = _types(events)
    assert "pause" in kinds and "asystole" in kinds
    pause = next(e for e in events if e.type == "pause")
    assert 2.0 <= pause.end_s - pause.start_s < 4.0
    asystole = next(e for e in events if e.type == "asystole")
    assert asystole.end_s == 26.0 and asystole.beats == 0


def test_no_asystole_on_a_disconnected_lead() -> None:
    t = _beats(60, 0.5, 5)
    assert "asystole" not in _types(monitor_events(t, np.zeros(len(t), bool), 20.0, lead_connected=False))


@pytest.mark.parametrize(("rate", "kind"), [(35, "extreme_bradycardia"), (150, "extreme_tachycardia")])
def test_extreme_rates_need_their_beat_counts(rate: float, kind: str) -> None:
    t = _beats(rate, 0.5, 30)
    events = [e for e in monitor_events(t, np.zeros(len(t), bool), 30.0) if e.type == kind]
    assert len(events) == 1
    e = events[0]
    assert e.beats == len(t) and e.hr_bpm == pytest.approx(rate, rel=0.02)
    # beats and rate agree: n beats over the span is the rate
    assert 60 * (e.beats - 1) / (e.end_s - e.start_s) == pytest.approx(e.hr_bpm, rel=0.01)


def test_sixteen_fast_beats_are_not_yet_extreme_tachycardia() -> None:
    t = _beats(150, 0.5, 0.5 + 15.5 * 0.4)  # 16 beats
    assert len(t) == 16
    assert "extreme_tachycardia" not in _types(monitor_events(t, np.zeros(len(t), bool), 10.0))


def test_vt_needs_five_ventricular_beats_faster_than_100() -> None:
    sinus = _beats(70, 0.4, 10)
    run = _beats(160, 10.2, 10.2 + 4 * 0.375 + 0.01)  # 5 beats
    t = np.concatenate([sinus, run])
    v = np.concatenate([np.zeros(len(sinus), bool), np.ones(len(run), bool)])
    events = [e for e in monitor_events(t, v, 12.0) if e.type == "vt"]
    assert len(events) == 1 and events[0].beats == 5 and events[0].hr_bpm == pytest.approx(160, rel=0.02)
    four = v.copy()
    four[-1] = False
    assert "vt" not in _types(monitor_events(t, four, 12.0))
    slow = np.concatenate([sinus, _beats(80, 10.2, 10.2 + 4 * 0.75 + 0.01)])
    assert "vt" not in _types(monitor_events(slow, np.ones(len(slow), bool) & (slow > 10), 14.0))


def test_the_reader_marks_ventricular_beats_the_beat_model_missed() -> None:
    t = np.concatenate([_beats(70, 0.4, 10), _beats(170, 10.1, 13)])
    frames = _frames(14.0, vt=(10.0, 13.2, 0.9))
    v = ventricular_beats(t, np.zeros(len(t), bool), frames, 0.5)
    assert v[t > 10.05].all() and not v[t < 9.8].any()
    assert "vt" in _types(monitor_events(t, np.zeros(len(t), bool), 14.0, frames, vt_beat=0.5))


def test_vf_needs_four_seconds_and_has_no_asystole_inside() -> None:
    t = _beats(70, 0.4, 8)
    events = monitor_events(t, np.zeros(len(t), bool), 20.0, _frames(20.0, vf=(8.5, 20.0, 0.95)))
    assert _types(events) == ["vf"]
    vf = events[0]
    assert vf.end_s == 20.0 and vf.probability == pytest.approx(0.95, abs=0.01)
    short = monitor_events(t, np.zeros(len(t), bool), 11.0, _frames(11.0, vf=(8.5, 11.0, 0.95)))
    assert "vf" not in _types(short)


def test_af_episode_from_frames_with_its_beats_and_rate() -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.4, 0.9, 60))
    t = t[t < 30]
    events = [e for e in monitor_events(t, np.zeros(len(t), bool), 30.0, _frames(30.0, af=(0, 30, 0.8)))
              if e.type == "af"]
    assert len(events) == 1 and events[0].beats == len(t)


def test_beat_events_carry_how_readable_the_signal_under_them_was() -> None:
    t = _beats(35, 0.5, 30)
    noisy = monitor_events(t, np.zeros(len(t), bool), 30.0, _frames(30.0, noise=(0, 30, 0.7)))
    brady = next(e for e in noisy if e.type == "extreme_bradycardia")
    assert brady.probability == pytest.approx(0.3, abs=0.01)
    assert next(e for e in monitor_events(t, np.zeros(len(t), bool), 30.0) if e.type == "extreme_bradycardia"
                ).probability is None


def test_flutter_split_between_vt_and_vf_with_odd_beats_is_vf_not_pauses() -> None:
    """The reader splits VF/flutter between its VT and VF classes; the detectors find odd, slow 'beats'."""
    t = np.concatenate([_beats(70, 0.4, 10), [11.2, 13.9, 14.6, 17.8]])
    frames = _frames(20.0, vt=(10.2, 20.0, 0.35), vf=(10.2, 20.0, 0.35))
    events = monitor_events(t, np.zeros(len(t), bool), 20.0, frames)
    assert [e.type for e in events] == ["vf"], events
    # the same probabilities over a regular fast run are VT, counted by its beats
    run = np.concatenate([_beats(70, 0.4, 10), _beats(170, 10.3, 20)])
    vt_frames = _frames(20.0, vt=(10.2, 20.0, 0.45), vf=(10.2, 20.0, 0.25))
    kinds = _types(monitor_events(run, np.zeros(len(run), bool), 20.0, vt_frames))
    assert "vt" in kinds and "vf" not in kinds
