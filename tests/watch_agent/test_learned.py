"""Learned detector: a registered `Detector`; the baseline's alerts plus a model-based V-run rule and ectopy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.ecg.qrs import Beat
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import SyntheticEpisode, load_wfdb, synthetic
from shared.model.features import N_CONTEXT, WAVE_CHANNELS, WAVE_LEN, BeatFeatures
from shared.model.net import BeatNet, NetConfig
from watch_agent import learned
from watch_agent.detector import BaselineDetector, Detector, DetectorEvent, make_detector
from watch_agent.learned import DEFAULT_MODEL, LearnedDetector

TINY = NetConfig(channels=(4, 4), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)
needs_model = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason=f"no trained model at {DEFAULT_MODEL}")


def _run(det: Detector, x: np.ndarray, chunk_s: float = 1.0) -> list[DetectorEvent]:
    step = max(1, round(chunk_s * det.fs))
    return [e for i in range(0, len(x), step) for e in det.feed(x[i:i + step])]


def _record(mitdb: Path, record: str, start: float, end: float) -> np.ndarray:
    return resample(load_wfdb(mitdb / record, start_s=start, end_s=end), MODEL_FS).samples_mv


def test_registered_and_protocol() -> None:
    det = make_detector("learned", MODEL_FS)
    assert isinstance(det, Detector) and isinstance(det, LearnedDetector) and det.fs == MODEL_FS
    with pytest.raises(FileNotFoundError):
        LearnedDetector(MODEL_FS, model_path="/nonexistent/model.pt")


def test_without_model_it_is_the_baseline(mitdb: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(learned, "DEFAULT_MODEL", tmp_path / "absent.pt")
    x = _record(mitdb, "207", 30.0, 55.0)
    det = LearnedDetector(MODEL_FS)
    assert det.model is None
    baseline = _run(BaselineDetector(MODEL_FS), x)
    assert [(e.kind, e.onset_s) for e in _run(det, x)] == [(e.kind, e.onset_s) for e in baseline]


def _row(t: float, rr: float) -> BeatFeatures:
    s = round(t * MODEL_FS)
    beat = Beat(s, s / MODEL_FS, rr, 0.12, 1.0, 3.0)
    return BeatFeatures(beat, np.zeros((WAVE_CHANNELS, WAVE_LEN), np.float32), np.zeros(N_CONTEXT, np.float32))


def test_model_v_run_rule_fires_once() -> None:
    det = LearnedDetector(MODEL_FS, model=BeatNet(TINY))
    events: list[DetectorEvent] = []
    for i, (cls, rr) in enumerate([(0, 0.8), (2, 0.5), (2, 0.45), (0, 0.45), (2, 0.5), (2, 0.5), (2, 0.5), (2, 0.5)]):
        det._on_classified(_row(10 + i * 0.5, rr), cls, events)
    assert [e.kind for e in events] == ["wide_complex_run"]
    assert events[0].onset_s == pytest.approx(12.0) and events[0].hr_bpm == pytest.approx(120.0)
    assert det.ectopy["V"] == 6 and det.ectopy["beats"] == 8 and det.ectopy["ectopic_burden"] == pytest.approx(0.75)
    slow: list[DetectorEvent] = []
    det2 = LearnedDetector(MODEL_FS, model=BeatNet(TINY))
    for i in range(5):  # V beats at 60 bpm: not a run
        det2._on_classified(_row(10 + i, 1.0), 2, slow)
    assert slow == []


def test_scores_every_beat_on_a_real_slice(mitdb: Path) -> None:
    """Record 119 (ventricular bigeminy), 40 s: every detected beat but the last is classified, chunk-invariant."""
    x = _record(mitdb, "119", 0.0, 40.0)
    counts = []
    for chunk_s in (0.04, 2.0):
        torch.manual_seed(0)  # the same (untrained) model both times
        det = LearnedDetector(MODEL_FS, model=BeatNet(TINY))
        _run(det, x, chunk_s)
        counts.append(det.ectopy)
        assert det.ectopy["beats"] >= len(det._beats) - 2 >= 30
    assert counts[0] == counts[1]


@needs_model
def test_trained_model_quiet_on_sinus_and_counts_pvcs(mitdb: Path) -> None:
    det = LearnedDetector(MODEL_FS)
    assert _run(det, _record(mitdb, "100", 0.0, 120.0)) == []
    assert det.ectopy["V"] <= 2
    det = LearnedDetector(MODEL_FS)
    _run(det, _record(mitdb, "119", 0.0, 60.0))
    assert det.ectopy["V"] >= 15  # bigeminy: about every other beat is a PVC


@needs_model
@pytest.mark.parametrize(
    ("record", "start", "vt_start", "vt_end"), [("205", 290.0, 298.8, 306.3), ("207", 30.0, 38.5, 40.0)]
)
def test_trained_model_fires_in_annotated_vt(mitdb: Path, record: str, start: float, vt_start: float,
                                             vt_end: float) -> None:
    x = _record(mitdb, record, start, vt_end + 15)
    events = _run(LearnedDetector(MODEL_FS), x)
    hits = [e for e in events if e.kind in {"wide_complex_run", "tachycardia"}]
    assert any(vt_start - start - 2 <= e.onset_s and e.detected_s <= vt_end - start + 10 for e in hits), events
    baseline = _run(BaselineDetector(MODEL_FS), x)
    assert {e.kind for e in baseline} <= {e.kind for e in events}  # never fewer alert kinds than the baseline


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "episode", "duration"),
    [("tachycardia", "tachycardia", 20.0), ("bradycardia", "bradycardia", 25.0),
     ("pause", "pause", 4.0), ("irregular_rhythm", "irregular", 40.0)],
)
def test_trained_model_same_alerts_as_baseline_on_synthetic_episodes(kind: str, episode: str, duration: float) -> None:
    x = synthetic(30 + duration + 20, MODEL_FS, episodes=[SyntheticEpisode(episode, 30, duration)],  # type: ignore[arg-type]
                  seed=7).samples_mv
    events = _run(LearnedDetector(MODEL_FS), x, 0.25)
    assert [e.kind for e in events] == [kind]  # exactly one event, as the baseline test demands


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize(("record", "start"), [("201", 10.0), ("203", 120.0), ("221", 60.0)])
def test_trained_model_fires_in_annotated_af(mitdb: Path, record: str, start: float) -> None:
    events = _run(LearnedDetector(MODEL_FS), _record(mitdb, record, start, start + 60))
    assert any(e.kind == "irregular_rhythm" and e.detected_s < 45 for e in events), events


ADDITIVE = DEFAULT_MODEL.with_name("model_additive_dp.npz")
needs_additive = pytest.mark.skipif(not ADDITIVE.is_file(), reason=f"no additive model at {ADDITIVE}")


@needs_additive
def test_the_watch_can_run_the_federated_additive_model(mitdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`CARDIOMESH_WATCH_MODEL` names the .npz: record 119's bigeminy PVCs are counted, 100's sinus stays quiet,
    and the result does not depend on how the stream is chunked."""
    monkeypatch.setenv("CARDIOMESH_WATCH_MODEL", str(ADDITIVE))
    det = make_detector("learned", MODEL_FS)
    assert isinstance(det, LearnedDetector) and det.additive is not None and det.model is None
    assert det.variant == "full" and det.variants == ["full"]
    assert det.name == "learned-additive-v1"  # what its alerts name as their detector
    counts = []
    for chunk_s in (0.04, 2.0):
        det = LearnedDetector(MODEL_FS)
        _run(det, _record(mitdb, "119", 0.0, 60.0), chunk_s)
        counts.append(det.ectopy)
    assert counts[0] == counts[1] and counts[0]["V"] >= 15  # about every other beat is a PVC
    assert det.inference_ms is not None  # timed like BeatNet: the training selection reads it
    quiet = LearnedDetector(MODEL_FS)
    assert _run(quiet, _record(mitdb, "100", 0.0, 120.0)) == []
    assert quiet.ectopy["V"] <= 2


def test_a_missing_additive_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such model file"):
        LearnedDetector(MODEL_FS, model_path=tmp_path / "absent.npz")


@pytest.mark.parametrize(("name", "kind"), [("model_trees.npz", "trees"), ("model_forest_dp.npz", "forest")])
def test_the_watch_can_run_the_federated_trees_or_forest(mitdb: Path, name: str, kind: str) -> None:
    """The trees' and the forest's .npz name themselves: the watch reads each beat against its recent beats, as
    with the additive model; 119's bigeminy PVCs are counted whatever the chunking."""
    path = DEFAULT_MODEL.with_name(name)
    if not path.is_file():
        pytest.skip(f"no model at {path}")
    counts = []
    for chunk_s in (0.04, 2.0):
        det = LearnedDetector(MODEL_FS, model_path=path)
        assert det.name == f"learned-{kind}-v1" and det.model is None
        _run(det, _record(mitdb, "119", 0.0, 60.0), chunk_s)
        counts.append(det.ectopy)
    assert counts[0] == counts[1] and counts[0]["V"] >= 15
