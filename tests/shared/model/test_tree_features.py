"""Record-relative tree features: label-free, relative to the wearer's own rhythm and median beat."""

from __future__ import annotations

import numpy as np

from shared.model.data import BeatSet
from shared.model.features import CONTEXT_NAMES, N_CONTEXT, PRE, WAVE_CHANNELS, WAVE_LEN
from shared.model.tree_features import FEATURE_NAMES, n_features, record_features


def _beats(n: int = 200, seed: int = 0) -> BeatSet:
    rng = np.random.default_rng(seed)
    t = np.arange(WAVE_LEN) - PRE
    normal = np.exp(-(t / 4.0) ** 2) * 3 - 0.3
    wave = np.repeat(normal[None, :], n, axis=0) + rng.normal(0, 0.05, (n, WAVE_LEN))
    wave[7] = np.exp(-(t / 14.0) ** 2) * 2  # one wide beat
    x_wave = np.zeros((n, WAVE_CHANNELS, WAVE_LEN), np.float32)
    x_wave[:, 0] = wave
    x_wave[:, 1] = wave - np.median(wave, axis=0)
    x_rr = np.zeros((n, N_CONTEXT), np.float32)
    rr = np.full(n, 0.8) + rng.normal(0, 0.01, n)
    rr[7] = 0.5  # premature
    x_rr[:, CONTEXT_NAMES.index("pre_rr_s")] = rr
    x_rr[:, CONTEXT_NAMES.index("post_rr_s")] = np.roll(rr, -1)
    x_rr[:, CONTEXT_NAMES.index("local_rr_s")] = 0.8
    x_rr[0, CONTEXT_NAMES.index("pre_rr_s")] = np.nan  # the first beat has no RR before it
    return BeatSet(x_wave, x_rr, rng.integers(0, 4, n), np.arange(n) * 200, "t")


def test_features_are_relative_to_the_wearer_and_never_read_the_labels() -> None:
    beats = _beats()
    table = record_features(beats)
    assert table.shape == (len(beats), n_features()) and n_features() == len(FEATURE_NAMES) + 41
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    assert np.isnan(table[0, col["pre_rel"]])  # unknown stays unknown (a tree's missing bin)
    assert abs(float(np.nanmedian(table[:, col["pre_rel"]])) - 1.0) < 0.02  # RR in units of the wearer's median
    assert table[7, col["pre_rel"]] < 0.7  # the premature beat
    corr = table[:, col["corr_median_qrs"]]
    assert corr[7] < 0.9 < float(np.median(corr))  # the wide beat is unlike the wearer's median beat
    assert table[7, col["width_rel"]] > 1.5
    relabelled = BeatSet(beats.X_wave, beats.X_rr, np.zeros_like(beats.y), beats.sample, beats.record)
    assert np.array_equal(record_features(relabelled), table, equal_nan=True)
    assert record_features(beats.subset(np.arange(0))).shape == (0, n_features())
