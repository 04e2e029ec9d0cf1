"""Signal adapters: rates travel with samples, files fail clearly, synthetic episodes are what they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.ecg.annotations import load_annotations
from shared.ecg.signal import MODEL_FS, Signal, resample
from shared.ecg.sources import SyntheticEpisode, load_csv, load_wfdb, synthetic


def test_signal_slice_and_duration() -> None:
    s = Signal(np.arange(1000.0), 250.0, "II", "x")
    assert s.duration_s == 4.0
    part = s.slice_s(1.0, 2.0)
    assert len(part.samples_mv) == 250 and part.samples_mv[0] == 250 and part.fs == 250.0


def test_resample_keeps_duration_and_rate() -> None:
    s = Signal(np.sin(np.linspace(0, 20, 3600)), 360.0, "MLII", "x")
    out = resample(s, MODEL_FS)
    assert out.fs == MODEL_FS and len(out.samples_mv) == 2500


def test_load_wfdb_window_and_lead(mitdb: Path) -> None:
    s = load_wfdb(mitdb / "100", start_s=10, end_s=20)
    assert s.fs == 360.0 and s.lead == "MLII" and len(s.samples_mv) == 3600
    s102 = load_wfdb(mitdb / "102", end_s=5)
    assert s102.lead == "V5"  # no MLII in 102: falls back to lead 0 and says so


def test_annotations_rhythms(mitdb: Path) -> None:
    ann = load_annotations(mitdb / "203")
    assert ann.fs == 360.0 and len(ann.beat_samples) == 2980
    assert ann.episodes("VT") and ann.episodes("AFIB")


def test_load_csv_infers_rate(tmp_path: Path) -> None:
    path = tmp_path / "ecg.csv"
    t = np.arange(500) / 250.0
    path.write_text("time_s,mv\n" + "".join(f"{a},{b}\n" for a, b in zip(t, np.sin(t), strict=True)))
    s = load_csv(path)
    assert s.fs == pytest.approx(250.0) and len(s.samples_mv) == 500
    assert load_csv(path, fs=100.0).fs == 100.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("a,b\n1,2\n", "header must name"),
        ("time_s,mv\n0,1\n0.004,x\n", "expected numbers"),
        ("time_s,mv\n0,1\n", "at least 2 samples"),
        ("time_s,mv\n0,1\n0.004,1\n0.1,1\n0.104,1\n", "not evenly spaced"),
        ("time_s,mv\n0,1\n0,1\n", "increase strictly"),
    ],
)
def test_load_csv_errors_are_clear(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_csv(path)


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_csv(tmp_path / "nope.csv")


def test_synthetic_has_rate_and_length() -> None:
    s = synthetic(10, 250.0, episodes=[SyntheticEpisode("pause", 4, 3)])
    assert s.fs == 250.0 and len(s.samples_mv) == 2500
    assert np.ptp(s.samples_mv[int(4.2 * 250):int(6.8 * 250)]) < 0.1  # flat during the pause
