"""Streaming QRS detection: accuracy against MIT-BIH annotations and chunk-size invariance."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from wfdb import processing

from shared.ecg.annotations import load_annotations
from shared.ecg.qrs import StreamingQrsDetector
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import load_wfdb, synthetic


def _beats(x: np.ndarray, fs: float, chunk_s: float) -> list[int]:
    det = StreamingQrsDetector(fs)
    step = max(1, round(chunk_s * fs))
    return [b.sample for i in range(0, len(x), step) for b in det.feed(x[i:i + step])]


@pytest.mark.parametrize(("record", "min_score"), [("100", 0.99), ("119", 0.99), ("203", 0.9)])
def test_qrs_se_ppv(mitdb: Path, record: str, min_score: float) -> None:
    start, end = 60.0, 360.0
    sig = resample(load_wfdb(mitdb / record, start_s=start, end_s=end), MODEL_FS)
    ann = load_annotations(mitdb / record)
    ref = np.round(ann.beats_between(start, end) * MODEL_FS / ann.fs).astype(int)
    test = np.asarray(_beats(sig.samples_mv, MODEL_FS, 1.0))
    ref = ref[ref > 2.5 * MODEL_FS]  # thresholds learn on the first 2 s
    test = test[test > 2.5 * MODEL_FS]
    cmp = processing.compare_annotations(ref, test, int(0.15 * MODEL_FS))
    assert cmp.sensitivity > min_score and cmp.positive_predictivity > min_score


def test_chunk_size_invariance(mitdb: Path) -> None:
    x = resample(load_wfdb(mitdb / "208", start_s=0, end_s=60), MODEL_FS).samples_mv
    assert _beats(x, MODEL_FS, 0.04) == _beats(x, MODEL_FS, 1.0) == _beats(x, MODEL_FS, 2.0)


def test_chunk_invariance_synthetic_at_360() -> None:
    x = synthetic(30, 360.0, seed=2).samples_mv
    a, b = _beats(x, 360.0, 0.04), _beats(x, 360.0, 1.7)
    assert a == b and 30 <= len(a) <= 36  # 70 bpm over 30 s, minus the 2 s learning period


def test_fast_enough() -> None:
    x = np.tile(synthetic(60, MODEL_FS, seed=3).samples_mv, 30)  # 30 minutes
    started = time.perf_counter()
    _beats(x, MODEL_FS, 1.0)
    assert time.perf_counter() - started < 5.0


def test_beat_fields() -> None:
    det = StreamingQrsDetector(MODEL_FS)
    beats = det.feed(synthetic(20, MODEL_FS, heart_rate=60, seed=4).samples_mv)
    assert beats[0].rr_s is None
    later = beats[3]
    assert later.rr_s == pytest.approx(1.0, abs=0.1) and later.t_s == later.sample / MODEL_FS
    assert later.qrs_width_s is not None and 0.04 < later.qrs_width_s < 0.3
    assert later.lf_ratio is not None and later.amplitude > 0
