"""Drill segments: a short arrhythmia excerpt the watch splices into its live stream on command.

Real MIT-BIH excerpts are used where the database has a clean one (each chosen so that the baseline
detector reliably raises the matching alert — the tests check it); synthetic ones otherwise, or when the
data is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from shared.ecg.signal import Signal, resample
from shared.ecg.sources import SyntheticEpisode, load_wfdb, synthetic

DrillScenario = Literal["vt", "af", "brady", "pause"]

#: scenario → (record, start_s, end_s): a VT run in 205 (298.8–306.3 s), atrial fibrillation in 221.
REAL_EXCERPTS: dict[str, tuple[str, float, float]] = {
    "vt": ("205", 292.0, 312.0),
    "af": ("221", 5.0, 35.0),
}

#: Which alert kinds a drill of each scenario must raise.
EXPECTED_KINDS: dict[str, frozenset[str]] = {
    "vt": frozenset({"wide_complex_run", "tachycardia"}),
    "af": frozenset({"irregular_rhythm"}),
    "brady": frozenset({"bradycardia"}),
    "pause": frozenset({"pause"}),
}


def synthetic_vt(duration_s: float, fs: float, *, rate_bpm: float = 180.0, seed: int = 11) -> Signal:
    """Monomorphic VT without a database: wide (≈160 ms) biphasic complexes with discordant T waves.

    neurokit2's simulator only makes narrow sinus-like complexes, which a detector rightly calls sinus
    tachycardia; a VT drill has to look like VT.
    """
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    signal = np.zeros(n)
    beat_t = 0.4
    while beat_t < duration_s - 0.1:
        sigma = 0.035
        qrs = -(t - beat_t) / sigma * np.exp(-0.5 * ((t - beat_t) / sigma) ** 2) * 1.2
        twave = -0.45 * np.exp(-0.5 * ((t - beat_t - 0.16) / 0.05) ** 2)
        signal += qrs + twave
        beat_t += 60.0 / rate_bpm * (1 + rng.normal(0, 0.02))
    signal += rng.normal(0, 0.01, n)
    return Signal(signal, float(fs), "MLII", f"synthetic-vt-{rate_bpm:.0f}bpm")


def _synthetic_segment(scenario: DrillScenario, fs: float) -> Signal:
    if scenario == "vt":
        return synthetic_vt(15.0, fs)
    if scenario == "af":
        return synthetic(30.0, fs, episodes=[SyntheticEpisode("irregular", 1.0, 29.0)], seed=12)
    if scenario == "brady":
        return synthetic(25.0, fs, episodes=[SyntheticEpisode("bradycardia", 1.0, 24.0)], seed=13)
    return synthetic(15.0, fs, episodes=[SyntheticEpisode("pause", 5.0, 4.0)], seed=14)


def drill_segment(scenario: DrillScenario, fs: float, mitdb_dir: Path | None) -> Signal:
    """An excerpt for the scenario at rate `fs`: real (MIT-BIH) where available, synthetic otherwise."""
    if scenario not in EXPECTED_KINDS:
        raise ValueError(f"unknown drill scenario {scenario!r}; expected one of {sorted(EXPECTED_KINDS)}")
    excerpt = REAL_EXCERPTS.get(scenario)
    if excerpt is not None and mitdb_dir is not None and (Path(mitdb_dir) / f"{excerpt[0]}.hea").exists():
        record, start, end = excerpt
        signal = load_wfdb(Path(mitdb_dir) / record, start_s=start, end_s=end)
        out = resample(signal, fs)
        return Signal(out.samples_mv, out.fs, out.lead, f"mitdb/{record}@{start:g}s")
    return _synthetic_segment(scenario, fs)
