"""The phone's strip analysis: synthetic edge cases and real MIT-BIH slices whose rhythm is annotated."""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest
import wfdb

from shared.analysis.strip import analyze_strip


def _mitdb(mitdb: Path, record: str, start_s: float, seconds: float = 30.0) -> tuple[np.ndarray, float]:
    header = wfdb.rdheader(str(mitdb / record))
    fs = float(header.fs)
    rec = wfdb.rdrecord(str(mitdb / record), sampfrom=int(start_s * fs), sampto=int((start_s + seconds) * fs),
                        channel_names=["MLII"])
    return rec.p_signal[:, 0], fs


@pytest.mark.parametrize("fs", [128, 250, 360, 1000])
def test_sinus_at_any_sampling_rate(fs: int) -> None:
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=70, random_state=3)
    result = analyze_strip(ecg, fs)
    assert result.quality in ("good", "acceptable")
    assert result.rhythm == "sinus"
    assert result.hr_bpm == pytest.approx(70, abs=4)
    assert result.n_beats == pytest.approx(23, abs=2)


@pytest.mark.parametrize(("hr", "rhythm"), [(125, "sinus_tachycardia"), (42, "sinus_bradycardia")])
def test_rate_rhythms(hr: int, rhythm: str) -> None:
    """The rules name sinus by its rate (the reader is not asked: simulated ECG is no test of a learned model)."""
    ecg = nk.ecg_simulate(duration=20, sampling_rate=250, heart_rate=hr, random_state=1)
    assert analyze_strip(ecg, 250, reader=None).rhythm == rhythm


def test_flat_line_noise_and_short_strips_are_unusable_not_guessed() -> None:
    assert analyze_strip(np.zeros(5000), 250).rhythm == "inconclusive"
    noise = np.random.default_rng(0).standard_normal(5000) * 0.5
    assert analyze_strip(noise, 250).quality == "unusable"
    short = analyze_strip(nk.ecg_simulate(duration=3, sampling_rate=250, random_state=1), 250)
    assert short.quality == "unusable" and "too short" in short.note
    assert analyze_strip(np.full(5000, np.nan), 250).quality == "unusable"


def test_sampling_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        analyze_strip(np.zeros(100), 0)


@pytest.mark.data
def test_normal_sinus_on_record_100(mitdb: Path) -> None:
    signal, fs = _mitdb(mitdb, "100", 60)
    result = analyze_strip(signal, fs)
    assert result.rhythm == "sinus" and result.quality != "unusable" and not result.irregular
    assert 60 < (result.hr_bpm or 0) < 90


@pytest.mark.data
def test_atrial_fibrillation_on_record_201(mitdb: Path) -> None:
    signal, fs = _mitdb(mitdb, "201", 0)  # annotated (AFIB from the start
    result = analyze_strip(signal, fs)
    assert result.irregular and result.rhythm == "af"
