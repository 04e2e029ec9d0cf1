"""Baseline detector: fires inside annotated VT/AF, stays quiet on sinus, one event per episode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import SyntheticEpisode, load_wfdb, synthetic
from watch_agent.detector import BaselineDetector, Detector, DetectorEvent, make_detector


def _run(x: np.ndarray, chunk_s: float = 1.0) -> tuple[BaselineDetector, list[DetectorEvent]]:
    det = BaselineDetector(MODEL_FS)
    step = max(1, round(chunk_s * MODEL_FS))
    events = [e for i in range(0, len(x), step) for e in det.feed(x[i:i + step])]
    return det, events


def _record(mitdb: Path, record: str, start: float, end: float) -> np.ndarray:
    return resample(load_wfdb(mitdb / record, start_s=start, end_s=end), MODEL_FS).samples_mv


def test_factory_and_protocol() -> None:
    det = make_detector("baseline", MODEL_FS)
    assert isinstance(det, Detector) and det.fs == MODEL_FS
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope", MODEL_FS)


def test_quiet_on_normal_sinus(mitdb: Path) -> None:
    det, events = _run(_record(mitdb, "100", 0, 300))
    assert events == []
    assert det.heart_rate_bpm == pytest.approx(75, abs=12) and 8 <= det.beats_in_window <= 16


@pytest.mark.parametrize(
    ("record", "start", "vt_start", "vt_end"), [("205", 290.0, 298.8, 306.3), ("207", 30.0, 38.5, 40.0)]
)
def test_fires_in_annotated_vt(mitdb: Path, record: str, start: float, vt_start: float, vt_end: float) -> None:
    _, events = _run(_record(mitdb, record, start, vt_end + 15))
    hits = [e for e in events if e.kind in {"wide_complex_run", "tachycardia"}]
    assert any(vt_start - start - 2 <= e.onset_s and e.detected_s <= vt_end - start + 10 for e in hits), events


@pytest.mark.parametrize(("record", "start"), [("201", 10.0), ("203", 120.0), ("221", 60.0)])
def test_fires_in_annotated_af(mitdb: Path, record: str, start: float) -> None:
    _, events = _run(_record(mitdb, record, start, start + 60))
    assert any(e.kind == "irregular_rhythm" and e.detected_s < 45 for e in events), events


@pytest.mark.parametrize(
    ("kind", "episode", "duration"),
    [("tachycardia", "tachycardia", 20.0), ("bradycardia", "bradycardia", 25.0),
     ("pause", "pause", 4.0), ("irregular_rhythm", "irregular", 40.0)],
)
def test_synthetic_episodes(kind: str, episode: str, duration: float) -> None:
    x = synthetic(30 + duration + 20, MODEL_FS, episodes=[SyntheticEpisode(episode, 30, duration)], seed=7).samples_mv  # type: ignore[arg-type]
    _, events = _run(x, 0.25)
    assert [e.kind for e in events] == [kind]  # exactly one event, of the right kind
    event = events[0]
    assert 25 <= event.onset_s <= 30 + duration and event.detected_s >= event.onset_s


def test_pause_fires_before_next_beat() -> None:
    x = synthetic(40, MODEL_FS, episodes=[SyntheticEpisode("pause", 20, 8)], seed=8).samples_mv
    _, events = _run(x, 0.04)
    pauses = [e for e in events if e.kind == "pause"]
    assert len(pauses) == 1 and pauses[0].detected_s < 20 + 4.0  # well before the gap ends at 28 s


def test_events_chunk_invariant() -> None:
    x = synthetic(80, MODEL_FS, episodes=[SyntheticEpisode("tachycardia", 30, 20)], seed=9).samples_mv
    a = [(e.kind, e.onset_s) for e in _run(x, 0.04)[1]]
    b = [(e.kind, e.onset_s) for e in _run(x, 2.0)[1]]
    assert a == b and a


def test_refractory_limits_flapping() -> None:
    eps = [SyntheticEpisode("tachycardia", t, 12) for t in (20, 40, 60)]
    x = synthetic(90, MODEL_FS, episodes=eps, seed=10).samples_mv
    _, events = _run(x)
    assert [e.kind for e in events].count("tachycardia") == 2  # 3 episodes, 20 s apart, 30 s refractory
