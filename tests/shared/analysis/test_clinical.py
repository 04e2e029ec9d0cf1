"""Clinical-depth rules on real MIT-BIH stretches whose annotation is known, and synthetic edge cases.

Annotations choose *where* to look and what to expect; the analysis never sees them.
"""

from __future__ import annotations

from pathlib import Path

import neurokit2 as nk
import numpy as np
import pytest

from shared.analysis import ectopy
from shared.analysis.payload import to_payload
from shared.analysis.quality import bsqi
from shared.analysis.rules import sample_entropy, turning_point_ratio
from shared.analysis.strip import analyze_strip
from shared.ecg.annotations import load_annotations
from shared.ecg.signal import Signal, resample
from shared.ecg.sources import load_wfdb
from shared.model.rhythm.reader import active_reader


def _strip(mitdb: Path, record: str, start_s: float, seconds: float = 30.0) -> Signal:
    return load_wfdb(mitdb / record, start_s=start_s, end_s=start_s + seconds)


def _episode_start(mitdb: Path, record: str, rhythm: str, min_s: float = 30.0) -> float:
    episodes = [e for e in load_annotations(mitdb / record).episodes(rhythm) if e.duration_s >= min_s]
    assert episodes, f"{record} has no {rhythm} episode ≥ {min_s} s"
    return episodes[0].start_s + 1.0


# ------------------------------------------------------------------ synthetic edge cases

def test_flat_line_is_lead_off_inconclusive_not_asystole() -> None:
    result = analyze_strip(np.zeros(30 * 250), 250)
    assert result.rhythm == "inconclusive" and result.quality == "unusable"
    assert "lead off" in result.note


def test_noise_only_is_unusable() -> None:
    noise = np.random.default_rng(0).standard_normal(30 * 250) * 0.3
    result = analyze_strip(noise, 250)
    assert result.quality == "unusable" and result.rhythm == "inconclusive"
    assert set(result.segment_quality or []) == {"unusable"}


def test_four_second_strip_is_too_short_and_five_seconds_is_read() -> None:
    """The product reads 5–60 s strips (issue 13): shorter ones say why they are not read."""
    result = analyze_strip(nk.ecg_simulate(duration=4, sampling_rate=250, random_state=2), 250)
    assert result.quality == "unusable" and result.rhythm == "inconclusive" and "too short" in result.note
    five = analyze_strip(nk.ecg_simulate(duration=5, sampling_rate=250, random_state=2), 250)
    assert five.quality != "unusable" and five.n_beats >= 4


@pytest.mark.parametrize("fs", [128, 250, 500, 1000])
def test_intervals_and_hr_at_any_rate(fs: int) -> None:
    result = analyze_strip(nk.ecg_simulate(duration=15, sampling_rate=fs, heart_rate=72, random_state=4), fs)
    assert result.rhythm == "sinus" and result.quality != "unusable"
    assert result.hr_bpm == pytest.approx(72, abs=4)
    assert result.qrs_ms is not None and 40 <= result.qrs_ms <= 140 and (result.qrs_beats or 0) >= 10
    assert result.qt_ms is not None and result.qtc_bazett_ms is not None and result.qtc_fridericia_ms is not None
    assert result.r_peaks.max() < 15 * fs  # peaks come back at the caller's rate


def test_ventricular_fibrillation_like_signal() -> None:
    fs = 250
    t = np.arange(20 * fs) / fs
    rng = np.random.default_rng(1)
    freq = 5.5 + 0.3 * np.sin(2 * np.pi * 0.2 * t)
    vf = 0.6 * np.sin(2 * np.pi * np.cumsum(freq) / fs) * (1 + 0.3 * np.sin(2 * np.pi * 0.3 * t))
    result = analyze_strip(vf + rng.normal(0, 0.02, len(t)), fs)
    assert result.rhythm == "vf"


def test_asystole_after_beats_on_a_connected_lead() -> None:
    fs = 250
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=70, random_state=5)
    ecg[12 * fs:] = np.random.default_rng(2).normal(0, 0.01, 8 * fs)  # baseline noise, no QRS to the end
    result = analyze_strip(ecg, fs)
    assert result.rhythm == "asystole"


def test_pause_that_ends_in_a_beat_is_a_pause_not_asystole() -> None:
    fs = 250
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=70, random_state=5)
    ecg[8 * fs:11 * fs] = np.random.default_rng(2).normal(0, 0.01, 3 * fs)
    result = analyze_strip(ecg, fs)
    assert result.rhythm != "asystole" and (result.pauses or 0) >= 1 and (result.max_rr_s or 0) > 2


def test_hrv_frequency_only_on_long_strips() -> None:
    fs = 250
    short = analyze_strip(nk.ecg_simulate(duration=30, sampling_rate=fs, heart_rate=70, random_state=6), fs)
    assert short.hrv_freq is None and any("≥ 60 s" in n for n in short.notes)
    long = analyze_strip(nk.ecg_simulate(duration=70, sampling_rate=fs, heart_rate=70, random_state=6), fs)
    assert long.hrv_freq is not None and {"lf", "hf", "lf_hf"} <= set(long.hrv_freq)


def test_payload_carries_the_clinical_fields() -> None:
    result = analyze_strip(nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=7), 250)
    payload = to_payload("a1", result)
    assert payload.rhythm_confidence == result.rhythm_confidence and payload.qrs_beats == result.qrs_beats
    assert payload.segment_quality == result.segment_quality and payload.pauses == 0


def test_payload_fits_a_long_strip() -> None:
    """A 10-minute strip still fits the payload's 64 segment labels (segments grow)."""
    fs = 128
    ecg = np.tile(nk.ecg_simulate(duration=60, sampling_rate=fs, heart_rate=70, random_state=8), 10)
    result = analyze_strip(ecg, fs)
    assert len(result.segment_quality or []) <= 64
    to_payload("a2", result)


def test_rule_helpers() -> None:
    assert bsqi(np.array([1.0, 2.0, 3.0]), np.array([1.02, 2.0, 3.05])) == 1.0
    assert bsqi(np.array([1.0, 2.0]), np.array([5.0])) == 0.0
    chaos = np.random.default_rng(1).uniform(0.4, 1.2, 40)
    assert turning_point_ratio(chaos) == pytest.approx(1.0, abs=0.3)
    assert (sample_entropy(chaos) or 0) > 1.0


def test_learned_classifier_hook_replaces_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)
    try:
        ectopy.set_ectopic_classifier(lambda beats: np.ones(len(beats.samples), dtype=bool))
        result = analyze_strip(ecg, 250)
        assert result.ectopy_method == "learned" and result.ectopic_beats == result.n_beats
        assert result.ventricular.all() and result.ectopic.all()
    finally:
        ectopy.set_ectopic_classifier(None)
    monkeypatch.setenv(ectopy.MODEL_ENV, "off")
    assert analyze_strip(ecg, 250).ectopy_method == "wide-beat rule"


def test_classifier_may_flag_ectopic_beats_that_are_not_ventricular() -> None:
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)

    def every_other_supraventricular(beats: ectopy.BeatFeatures) -> ectopy.EctopyFlags:
        ectopic = np.arange(len(beats.samples)) % 2 == 0
        return ectopy.EctopyFlags(ventricular=np.zeros(len(beats.samples), dtype=bool), ectopic=ectopic)

    try:
        ectopy.set_ectopic_classifier(every_other_supraventricular)
        result = analyze_strip(ecg, 250)
    finally:
        ectopy.set_ectopic_classifier(None)
    assert result.ectopic_beats == (result.n_beats + 1) // 2 and not result.ventricular.any()
    assert result.ventricular_run_beats == 0  # S beats never make a ventricular run


def test_missing_or_unreadable_model_falls_back_to_the_rule_and_says_so_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)
    monkeypatch.setattr(ectopy, "_WARNED", set())
    monkeypatch.setenv(ectopy.MODEL_ENV, str(tmp_path / "absent.pt"))
    with caplog.at_level("WARNING", logger="shared.analysis.ectopy"):
        assert analyze_strip(ecg, 250).ectopy_method == "wide-beat rule"
        assert analyze_strip(ecg, 250).ectopy_method == "wide-beat rule"
    assert sum("no model at" in r.getMessage() for r in caplog.records) == 1

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    monkeypatch.setenv(ectopy.MODEL_ENV, str(garbage))
    caplog.clear()
    with caplog.at_level("WARNING", logger="shared.analysis.ectopy"):
        assert analyze_strip(ecg, 250).ectopy_method == "wide-beat rule"
        assert analyze_strip(ecg, 250).ectopy_method == "wide-beat rule"
    assert sum("not a readable model file" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.skipif(not ectopy.DEFAULT_MODEL.is_file(), reason="no shared model at bench/results/model.pt")
def test_shared_model_is_the_default_and_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ectopy.MODEL_ENV, raising=False)
    first = ectopy.shared_model_classifier()
    assert first is not None and ectopy.shared_model_classifier() is first
    monkeypatch.setenv(ectopy.MODEL_ENV, str(ectopy.DEFAULT_MODEL))
    assert ectopy.shared_model_classifier() is first  # same file: the same loaded model
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)
    result = analyze_strip(ecg, 250)
    assert result.ectopy_method == "shared model model.pt"
    assert len(result.ectopic) == result.n_beats


ADDITIVE_MODEL = ectopy.DEFAULT_MODEL.parent / "model_additive_dp.npz"


@pytest.mark.skipif(not ADDITIVE_MODEL.is_file(), reason="no additive model at bench/results/model_additive_dp.npz")
def test_the_federated_additive_model_can_be_the_phones_ectopy_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ectopy.MODEL_ENV, str(ADDITIVE_MODEL))
    classifier = ectopy.shared_model_classifier()
    assert isinstance(classifier, ectopy.RelativeModelClassifier) and classifier.kind == "additive"
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)
    result = analyze_strip(ecg, 250)
    assert result.ectopy_method == "additive model model_additive_dp.npz"
    assert len(result.ectopic) == result.n_beats
    assert (result.ectopic_burden or 0) <= 0.2  # a clean synthetic sinus strip: (nearly) nothing ectopic


@pytest.mark.data
@pytest.mark.skipif(not ADDITIVE_MODEL.is_file(), reason="no additive model at bench/results/model_additive_dp.npz")
def test_the_additive_model_finds_the_ventricular_beats_of_a_held_out_record(
        mitdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record 233 (DS2: never trained on) has frequent multiform PVCs: the strip's V beats are flagged."""
    monkeypatch.setenv(ectopy.MODEL_ENV, str(ADDITIVE_MODEL))
    s = _strip(mitdb, "233", 0, 30)
    notes = load_annotations(mitdb / "233")
    annotated = sum(sym == "V" for t, sym in zip(notes.beat_times_s, notes.beat_symbols, strict=True) if t < 30)
    result = analyze_strip(s.samples_mv, s.fs)
    assert result.ectopy_method.startswith("additive model")
    assert annotated >= 5 and sum(result.ventricular) >= 0.6 * annotated  # 12 of 14 when written


# ------------------------------------------------------------------ real MIT-BIH stretches

@pytest.mark.data
@pytest.mark.parametrize("record", ["100", "101", "103"])
def test_normal_sinus_with_plausible_intervals(mitdb: Path, record: str) -> None:
    s = _strip(mitdb, record, 300)
    result = analyze_strip(s.samples_mv, s.fs)
    assert result.rhythm == "sinus" and result.quality != "unusable"
    assert (result.rhythm_confidence or 0) >= 0.6
    assert result.pr_ms is not None and 100 <= result.pr_ms <= 220 and (result.pr_beats or 0) >= 10
    assert result.qrs_ms is not None and 60 <= result.qrs_ms <= 130
    assert (result.ectopic_burden or 0) <= 0.1 and result.pauses == 0


@pytest.mark.data
@pytest.mark.parametrize("record", ["201", "203", "210", "219", "221", "222"])
def test_atrial_fibrillation(mitdb: Path, record: str) -> None:
    seconds = 20.0 if record == "222" else 30.0  # 222's AF episodes are short
    s = _strip(mitdb, record, _episode_start(mitdb, record, "AFIB", seconds), seconds)
    result = analyze_strip(s.samples_mv, s.fs)
    assert result.rhythm in ("af", "inconclusive")  # never a confident non-AF reading
    if record in ("201", "210", "219", "221"):  # clean AF: must be read
        assert result.rhythm == "af" and (result.rhythm_confidence or 0) >= 0.5


@pytest.mark.data
def test_atrial_fibrillation_202(mitdb: Path) -> None:
    """The rules miss 202's first AF episode (a repeating pre-QRS wave reads 'other'); the reader does not."""
    if active_reader() is None:
        pytest.xfail("known miss of the rules alone: 202's first AF episode keeps a repeating pre-QRS wave")
    s = _strip(mitdb, "202", _episode_start(mitdb, "202", "AFIB"))
    assert analyze_strip(s.samples_mv, s.fs).rhythm == "af"


@pytest.mark.data
@pytest.mark.parametrize("record", ["203", "205", "207", "210"])
def test_ventricular_runs_are_found(mitdb: Path, record: str) -> None:
    """The first annotated VT run of each record: found with the shared beat model (203, 205, 207 are in its
    training set DS1; 210 is not). Without a model the wide-beat rule finds only 207's."""
    if ectopy.shared_model_classifier() is None and record != "207":
        pytest.xfail("known gap without the shared model: beats of this run are missed by both detectors or "
                     "not flagged wide by the rule")
    episode = load_annotations(mitdb / record).episodes("VT")[0]
    s = _strip(mitdb, record, max(0.0, episode.start_s - 8), 20)
    result = analyze_strip(s.samples_mv, s.fs)
    assert (result.ventricular_run_beats or 0) >= 3
    assert (result.ectopic_beats or 0) >= 3


@pytest.mark.data
def test_bradycardia_and_pauses_on_232(mitdb: Path) -> None:
    ann = load_annotations(mitdb / "232")
    times = ann.beat_times_s
    gap = int(np.argmax(np.diff(times)))  # the longest annotated pause
    s = _strip(mitdb, "232", max(0.0, float(times[gap]) - 10), 30)
    result = analyze_strip(s.samples_mv, s.fs)
    assert (result.pauses or 0) >= 1 and (result.max_rr_s or 0) > 2.0
    assert result.rhythm not in ("af", "vt", "vf", "asystole")


@pytest.mark.data
def test_noisy_stretch_of_105_is_flagged(mitdb: Path) -> None:
    """105's noisiest annotated stretch: quality drops instead of a confident misreading."""
    ann = load_annotations(mitdb / "105")
    noisy = [e for e in ann.episodes("N")]  # rhythm is normal throughout; noise is what varies
    assert noisy
    worst = None
    for start in (1200.0, 1500.0, 1560.0):
        s = _strip(mitdb, "105", start, 30)
        result = analyze_strip(s.samples_mv, s.fs)
        if worst is None or result.quality_score < worst.quality_score:
            worst = result
    assert worst is not None
    assert "unusable" in (worst.segment_quality or []) or "noisy" in (worst.segment_quality or [])
    assert worst.rhythm in ("sinus", "sinus_tachycardia", "inconclusive")


@pytest.mark.data
def test_resampled_record_reads_the_same(mitdb: Path) -> None:
    s = _strip(mitdb, "201", _episode_start(mitdb, "201", "AFIB"))
    for fs in (128.0, 500.0):
        r = resample(s, fs)
        assert analyze_strip(r.samples_mv, r.fs).rhythm == "af"


@pytest.mark.parametrize(("name", "kind"), [("model_trees.npz", "trees"), ("model_forest_dp.npz", "forest")])
def test_the_federated_trees_or_forest_can_be_the_phones_ectopy_model(monkeypatch: pytest.MonkeyPatch, name: str,
                                                                      kind: str) -> None:
    path = ectopy.DEFAULT_MODEL.parent / name
    if not path.is_file():
        pytest.skip(f"no model at {path}")
    monkeypatch.setenv(ectopy.MODEL_ENV, str(path))
    classifier = ectopy.shared_model_classifier()
    assert isinstance(classifier, ectopy.RelativeModelClassifier) and classifier.kind == kind
    ecg = nk.ecg_simulate(duration=15, sampling_rate=250, heart_rate=70, random_state=9)
    result = analyze_strip(ecg, 250)
    assert result.ectopy_method == f"{kind} model {name}"
    assert len(result.ectopic) == result.n_beats
    assert (result.ectopic_burden or 0) <= 0.2  # a clean synthetic sinus strip: (nearly) nothing ectopic
