"""Beat datasets: AAMI labels, 150 ms one-to-one matching, feature shapes and wearer-relative RR features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.ecg.qrs import Beat
from shared.ecg.signal import MODEL_FS
from shared.model.data import Q_LABEL, UNMATCHED, aami_label, load_records, match_beats, record_beats
from shared.model.features import CONTEXT_NAMES, N_CONTEXT, WAVE_CHANNELS, WAVE_LEN, BeatFeaturizer


def test_aami_mapping() -> None:
    assert [aami_label(s) for s in "NLRej"] == [0] * 5
    assert [aami_label(s) for s in "AaJS"] == [1] * 4
    assert [aami_label(s) for s in "VE"] == [2, 2]
    assert aami_label("F") == 3
    assert [aami_label(s) for s in "/fQ?"] == [Q_LABEL] * 4


def test_match_within_150ms_one_to_one() -> None:
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    det = np.array([1.14, 2.16, 2.95, 3.02, 5.0])
    # 1.14 is within 150 ms; 2.16 is not; 2.95 and 3.02 both want 3.0 — the nearer (3.02) keeps it
    assert match_beats(det, ref).tolist() == [0, -1, -1, 2, -1]
    assert match_beats(np.array([]), ref).tolist() == []
    assert match_beats(det, np.array([])).tolist() == [-1] * 5


def _beats(times: list[float]) -> list[Beat]:
    out, last = [], None
    for t in times:
        s = round(t * MODEL_FS)
        out.append(Beat(s, s / MODEL_FS, None if last is None else (s - last) / MODEL_FS, 0.08, 1.0, 1.0))
        last = s
    return out


def test_featurizer_rr_normalisation() -> None:
    """A premature beat in a steady 0.8 s rhythm: short prev RR, long next RR, relative to the wearer."""
    times = [0.5 + 0.8 * i for i in range(20)]
    times.insert(12, times[11] + 0.5)  # premature beat 0.5 s after beat 11, then the rhythm goes on
    times = sorted(times)
    feat = BeatFeaturizer(MODEL_FS, keep_s=30.0)  # everything is pushed before the beats here
    x = np.sin(np.arange(int(20 * MODEL_FS)) / 10.0)
    feat.push_samples(x)
    for b in _beats(times):
        feat.push_beat(b)
    rows = feat.pop_ready() + feat.flush()
    assert len(rows) == len(times)
    assert rows[0].wave.shape == (WAVE_CHANNELS, WAVE_LEN) and rows[0].context.shape == (N_CONTEXT,)
    c = {name: float(rows[12].context[i]) for i, name in enumerate(CONTEXT_NAMES)}
    assert c["pre_rr_s"] == pytest.approx(0.5, abs=0.01)
    assert c["post_rr_s"] == pytest.approx(0.3, abs=0.01)  # next beat keeps the underlying rhythm
    assert c["log_pre_local"] < -0.3 and c["log_pre_long"] < -0.3
    steady = {name: float(rows[8].context[i]) for i, name in enumerate(CONTEXT_NAMES)}
    assert steady["log_pre_local"] == pytest.approx(0.0, abs=1e-3)
    assert steady["long_rr_s"] == pytest.approx(0.8, abs=0.01)
    w = rows[5].wave[0]
    assert abs(float(np.median(w))) < 1e-6 and float(np.std(w)) == pytest.approx(1.0, abs=0.01)


def test_featurizer_chunking_and_rate_independent() -> None:
    """Samples fed in small chunks give the same rows as one push; a 500 Hz stream gives the 250 Hz window."""
    x = np.sin(np.arange(int(12 * MODEL_FS)) / 7.0)
    times = [0.5 + 0.7 * i for i in range(15)]
    a = BeatFeaturizer(MODEL_FS)
    a.push_samples(x)
    for b in _beats(times):
        a.push_beat(b)
    rows_a = a.flush()
    b2 = BeatFeaturizer(MODEL_FS)
    rows_b = []
    beats = _beats(times)
    for i in range(0, len(x), 10):
        b2.push_samples(x[i:i + 10])
        while beats and beats[0].sample < i:
            b2.push_beat(beats.pop(0))
        rows_b += b2.pop_ready()
    for b in beats:
        b2.push_beat(b)
    rows_b += b2.flush()
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        np.testing.assert_allclose(ra.wave, rb.wave, atol=1e-5)
        np.testing.assert_allclose(ra.context, rb.context, atol=1e-5)
    fast = BeatFeaturizer(2 * MODEL_FS)
    fast.push_samples(np.sin(np.arange(int(12 * 2 * MODEL_FS)) / 14.0))
    for t in times:
        fast.push_beat(Beat(round(t * 2 * MODEL_FS), t, None, None, 1.0, None))
    rows_f = fast.flush()
    np.testing.assert_allclose(rows_f[3].wave[0], rows_a[3].wave[0], atol=1e-3)


def test_record_beats_on_a_real_slice(mitdb: Path) -> None:
    """Record 119 (ventricular bigeminy): beats from the watch's detector, labelled N and V."""
    beats = record_beats(mitdb / "119", start_s=0, end_s=60)
    n = len(beats)
    assert n > 50 and beats.X_wave.shape == (n, WAVE_CHANNELS, WAVE_LEN) and beats.X_rr.shape == (n, N_CONTEXT)
    assert beats.X_wave.dtype == np.float32 and beats.sample.shape == (n,)
    counts = np.bincount(beats.y[beats.y >= 0], minlength=5)
    assert counts[0] > 20 and counts[2] > 5  # N and V present
    assert np.sum(beats.y == UNMATCHED) <= 2
    assert abs(beats.n_reference - n) <= 3


def test_record_beats_without_detections_counts_every_reference_beat_missed(tmp_path: Path) -> None:
    pytest.importorskip("wfdb")
    import wfdb

    flat = np.zeros((360 * 10, 1))
    wfdb.wrsamp("flat", fs=360, units=["mV"], sig_name=["MLII"], p_signal=flat, fmt=["16"], write_dir=str(tmp_path))
    wfdb.wrann("flat", "atr", np.array([300, 600, 900, 1200]), ["N", "V", "N", "Q"], write_dir=str(tmp_path))
    beats = record_beats(tmp_path / "flat")
    assert len(beats) == 0 and beats.n_reference == 4
    assert beats.missed.tolist() == [2, 0, 1, 0]  # the Q beat has no class to miss


def test_cache_round_trip(mitdb: Path, tmp_path: Path) -> None:
    pytest.importorskip("wfdb")
    import wfdb

    rec = wfdb.rdrecord(str(mitdb / "100"), sampto=360 * 20)
    ann = wfdb.rdann(str(mitdb / "100"), "atr", sampto=360 * 20)
    wfdb.wrsamp("s100", fs=360, units=rec.units, sig_name=rec.sig_name, p_signal=rec.p_signal, fmt=["16", "16"],
                write_dir=str(tmp_path))
    # one extra reference "V" halfway between two real beats: no detection can match it, so it is a miss
    beat_samples = ann.sample[[i for i, sym in enumerate(ann.symbol) if sym == "N"]]
    fake = int((beat_samples[10] + beat_samples[11]) // 2)
    samples = np.sort(np.append(ann.sample, fake))
    symbols = [dict(zip(ann.sample.tolist(), ann.symbol, strict=True)).get(int(x), "V") for x in samples]
    wfdb.wrann("s100", "atr", samples, symbols, write_dir=str(tmp_path))
    cache = tmp_path / "cache"
    first = load_records([tmp_path / "s100"], processes=1, directory=cache)["s100"]
    assert list(cache.glob("*.npz"))
    assert first.missed[2] == 1 and first.missed.sum() <= 2  # the fake V (and at most one real beat at the edge)
    second = load_records([tmp_path / "s100"], processes=1, directory=cache)["s100"]
    np.testing.assert_array_equal(first.y, second.y)
    np.testing.assert_array_equal(first.X_wave, second.X_wave)
    np.testing.assert_array_equal(first.missed, second.missed)
    assert first.labelled().missed.tolist() == first.missed.tolist()  # misses stay with the record's beats
