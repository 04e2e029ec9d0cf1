"""Splits by person, labels from annotations, batches, class-bias tuning: the training side, in small."""

from __future__ import annotations

import numpy as np
import pytest

from shared.model.rhythm.beats import N_RR_FEATURES, rr_channels, rr_features
from shared.model.rhythm.corpus import Recording
from shared.model.rhythm.labels import AF, CLASSES, IGNORE, NOISE, OTHER, SINUS, VF, VT, rhythm_label
from shared.model.rhythm.preprocess import RHYTHM_FS, amplitude, normalise, to_model_rate
from shared.model.rhythm.sampling import CropSampler, strip_label
from shared.model.rhythm.splits import assign_folds, split, validation_split
from shared.model.rhythm.train import tune_class_bias


def _sine_ecg(seconds: float, rate_bpm: float = 75) -> np.ndarray:
    t = np.arange(int(seconds * RHYTHM_FS)) / RHYTHM_FS
    x = np.zeros_like(t)
    for b in np.arange(0.3, seconds, 60 / rate_bpm):
        x += np.exp(-(((t - b) / 0.02) ** 2))
    return x.astype(np.float32)


def _corpus() -> list[Recording]:
    out = []
    for i in range(40):
        out.append(Recording("cinc2017", f"A{i:05d}", "I", _sine_ecg(30), label=[SINUS, AF, OTHER, NOISE][i % 4],
                             beats=np.arange(30, 3000, 80)))
    for rec in ("201", "202", "203", "205"):
        labels = np.full(60_000, SINUS, np.int8)
        labels[20_000:30_000] = VT if rec != "201" else AF
        for ch in (0, 1):
            out.append(Recording("mitdb", rec, f"MLII#{ch}", _sine_ecg(600), labels=labels,
                                 beats=np.arange(30, 60_000, 80)))
    return out


def test_annotation_notes_map_onto_the_classes() -> None:
    assert rhythm_label("mitdb", "AFL") == AF and rhythm_label("vfdb", "VFIB") == VF
    assert rhythm_label("vfdb", "NOISE") == NOISE and rhythm_label("vfdb", "ASYS") == IGNORE
    assert rhythm_label("mitdb", "P") == OTHER and rhythm_label("mitdb", "unknown") == IGNORE


def test_folds_keep_a_person_and_both_leads_on_one_side() -> None:
    corpus = _corpus()
    folds = assign_folds(corpus, 5)
    assert folds["mitdb/201"] == folds.get("mitdb/202", folds["mitdb/201"])  # 201 and 202: one subject
    assert "mitdb/202" not in folds
    for k in range(5):
        train, test = split(corpus, folds, k)
        assert not {r.group for r in train} & {r.group for r in test}
    fit_side, valid = validation_split(corpus)
    assert valid and not {r.group for r in fit_side} & {r.group for r in valid}


def test_strip_label_names_life_threatening_rhythms_first() -> None:
    lab = np.full(1000, SINUS, np.int8)
    lab[700:] = VT
    assert strip_label(lab) == VT  # 30 % VT
    lab[700:] = AF
    assert strip_label(lab) == SINUS
    assert strip_label(np.full(1000, IGNORE, np.int8)) == IGNORE


def test_batches_have_signal_rr_channels_features_and_labels() -> None:
    sampler = CropSampler(_corpus(), crop_s=20.0, seed=3)
    batch = sampler.batch(sampler.epoch(8, 8)[0])
    n = int(20 * RHYTHM_FS)
    assert batch.x.shape == (8, 3, n) and batch.features.shape == (8, N_RR_FEATURES)
    assert batch.mask.shape == (8, n) and batch.frames.shape == (8, n)
    assert np.all(np.abs(batch.x[:, 0]) <= 8.0) and set(np.unique(batch.strip)) <= {IGNORE, *range(len(CLASSES))}


def test_rr_inputs_are_scale_free() -> None:
    regular = np.arange(50, 3000, 80)
    ch = rr_channels(regular, 3000)
    assert np.allclose(ch[0, 60:2900], 0.0) and np.allclose(ch[1], 0.0)
    f_slow, f_fast = rr_features(regular, 3000), rr_features(np.arange(50, 3000, 40), 3000)
    assert f_slow[0] == 1.0 and f_slow[2] == pytest.approx(0.0, abs=1e-6) and f_fast[1] > f_slow[1]
    rng = np.random.default_rng(0)
    irregular = np.cumsum(rng.integers(40, 120, 60))
    assert rr_features(irregular[irregular < 3000], 3000)[3] > 0.2  # NRMSSD
    assert rr_features(np.array([10, 90]), 3000)[0] == 0.0  # too few beats: features off


def test_preprocessing_is_rate_and_scale_free() -> None:
    import neurokit2 as nk

    x = np.asarray(nk.ecg_simulate(duration=10, sampling_rate=500, random_state=3))
    a = to_model_rate(x, 500.0)
    b = to_model_rate(x[::2] * 5, 250.0)
    assert len(a) == len(b) == 1000
    assert np.corrcoef(normalise(a), normalise(b))[0, 1] > 0.98
    assert amplitude(normalise(a)) == pytest.approx(1.0, rel=0.01)
    assert not np.any(normalise(np.zeros(500, np.float32)))


def test_class_bias_moves_decisions_towards_the_validation_f1() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    p = np.full((300, 6), 0.01)
    p[np.arange(300), y] = 0.3
    p[y == 2, 0] = 0.4  # class 2 ("other") is always under-called
    p /= p.sum(axis=1, keepdims=True)
    bias = tune_class_bias(p, y)
    assert bias[2] > 0.2 and np.all(bias[3:] == 0)
    assert np.all(tune_class_bias(p[:5], y[:5]) == 0)  # too few to tune on
