"""The reader file: any rate, lead polarity, scale and length in; calibrated probabilities and frames out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from shared.model.rhythm.labels import CLASSES
from shared.model.rhythm.net import RhythmNet
from shared.model.rhythm.reader import RhythmModelError, RhythmReader, Thresholds, active_reader


def _ecg(seconds: float, fs: float) -> np.ndarray:
    import neurokit2 as nk

    return np.asarray(nk.ecg_simulate(duration=int(np.ceil(seconds)), sampling_rate=int(fs), heart_rate=75,
                                      random_state=1))[: int(seconds * fs)]


def _reader(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    reader = RhythmReader(RhythmNet(), temperature=1.7,
                          thresholds=Thresholds(candidate=0.25, class_bias=(0, 0.3, 0.2, 0, 0, 0)),
                          card={"name": "test", "figure": np.float64(0.5)})
    return reader.save(tmp_path / "rhythm.pt")


def test_round_trip_keeps_weights_temperature_thresholds_and_card(tmp_path: Path) -> None:
    path = _reader(tmp_path)
    loaded = RhythmReader.load(path)
    assert loaded.temperature == 1.7 and loaded.thresholds.candidate == 0.25
    assert loaded.thresholds.class_bias == (0, 0.3, 0.2, 0, 0, 0)
    assert loaded.card == {"name": "test", "figure": 0.5} and len(loaded.version) == 12


@pytest.mark.parametrize(("fs", "seconds", "scale"), [(100.0, 5.0, 1.0), (250.0, 30.0, -0.2), (360.0, 12.0, 3.0),
                                                      (1000.0, 8.0, 1.0), (128.0, 60.0, 0.05)])
def test_any_rate_length_scale_and_polarity(tmp_path: Path, fs: float, seconds: float, scale: float) -> None:
    reader = RhythmReader.load(_reader(tmp_path))
    reading = reader.read(_ecg(seconds, fs) * scale, fs)
    assert set(reading.probabilities) == set(CLASSES)
    assert sum(reading.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert reading.frames.shape == (int(np.ceil(seconds * 100 / 16)), len(CLASSES))
    assert np.allclose(reading.frames.sum(axis=1), 1.0, atol=1e-4)
    assert reading.label in CLASSES


def test_same_reading_whatever_the_amplitude(tmp_path: Path) -> None:
    reader = RhythmReader.load(_reader(tmp_path))
    x = _ecg(20, 250)
    a, b = reader.read(x, 250), reader.read(x * 7.0, 250)
    assert a.probabilities == pytest.approx(b.probabilities, abs=1e-3)


def test_too_short_and_not_a_reader(tmp_path: Path) -> None:
    reader = RhythmReader.load(_reader(tmp_path))
    with pytest.raises(ValueError, match="too short"):
        reader.read(np.zeros(150), 100.0)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(RhythmModelError):
        RhythmReader.load(junk)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(RhythmModelError, match="not a CardioMesh rhythm reader"):
        RhythmReader.load(tmp_path / "other.pt")


def test_active_reader_follows_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _reader(tmp_path)
    monkeypatch.setenv("CARDIOMESH_RHYTHM_MODEL", str(path))
    assert active_reader() is not None
    monkeypatch.setenv("CARDIOMESH_RHYTHM_MODEL", "off")
    assert active_reader() is None
    monkeypatch.setenv("CARDIOMESH_RHYTHM_MODEL", str(tmp_path / "missing.pt"))
    assert active_reader() is None


def test_the_watch_can_run_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from watch_agent.app import reader_evidence

    monkeypatch.setenv("CARDIOMESH_RHYTHM_MODEL", str(_reader(tmp_path)))
    evidence = reader_evidence(_ecg(12, 250), 250.0)
    assert set(evidence) == {f"reader_p_{c}" for c in CLASSES}
    assert reader_evidence(np.zeros(100), 250.0) == {}
