"""Drill segments: a short arrhythmia excerpt the watch splices into its live stream on command.

Real excerpts (MIT-BIH; VFDB for VF and asystole) are used where the database has a clean one (each chosen so
that the baseline detector reliably raises the matching alert — the tests check it); synthetic ones
otherwise, or when the data is absent.

The watch's baseline detector finds no QRS in VF or asystole and calls both a pause (as many ambulatory
monitors do: "no beats"); the phone's strip analysis names the rhythm, and the edge triages either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.ecg.signal import Signal, resample
from shared.ecg.sources import SyntheticEpisode, load_wfdb, synthetic
from shared.messages.device import DrillScenario

#: scenario → (database, record, start_s, end_s), from the annotated rhythms: a VT run in mitdb/205
#: (298.8–306.3 s), atrial fibrillation in mitdb/221, supraventricular tachycardia in mitdb/209 (from 555.7 s),
#: ventricular fibrillation in vfdb/426 (from 645.7 s), asystole in vfdb/430 (1242.2–1261.4 s).
REAL_EXCERPTS: dict[str, tuple[str, str, float, float]] = {
    "vt": ("mitdb", "205", 292.0, 312.0),
    "af": ("mitdb", "221", 5.0, 35.0),
    "tachy": ("mitdb", "209", 555.7, 580.7),
    "vf": ("vfdb", "426", 645.7, 665.7),
    "asystole": ("vfdb", "430", 1242.2, 1260.2),
}

#: Which alert kinds a drill of each scenario must raise.
EXPECTED_KINDS: dict[str, frozenset[str]] = {
    "vt": frozenset({"wide_complex_run", "tachycardia"}),
    "vf": frozenset({"pause", "wide_complex_run", "tachycardia", "irregular_rhythm"}),
    "af": frozenset({"irregular_rhythm"}),
    "brady": frozenset({"bradycardia"}),
    "pause": frozenset({"pause"}),
    "asystole": frozenset({"pause", "bradycardia"}),
    "tachy": frozenset({"tachycardia"}),
}


#: Scenarios whose episode the edge must escalate (a drill that ends at an info triage failed). A tachycardia
#: is escalated only when the phone reads it as SVT, AF or flutter, or it is fast enough (≥ 150 bpm at the watch,
#: > 140 bpm over 17 beats on the strip): MIT-BIH's SVT runs (≈ 130 bpm) rightly end at info.
EXPECTS_ESCALATION: frozenset[str] = frozenset({"vt", "vf", "af", "brady", "pause", "asystole"})


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


def synthetic_vf(duration_s: float, fs: float, *, seed: int = 15) -> Signal:
    """Coarse VF without a database: an undulating 4–6 Hz waveform of wandering amplitude, no QRS, no T."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * fs)) / fs
    freq = 5.0 + 0.8 * np.sin(2 * np.pi * 0.13 * t + rng.uniform(0, np.pi))
    phase = 2 * np.pi * np.cumsum(freq) / fs
    amplitude = 0.5 + 0.25 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, np.pi))
    return Signal(amplitude * np.sin(phase) + rng.normal(0, 0.02, len(t)), float(fs), "MLII", "synthetic-vf")


def synthetic_asystole(duration_s: float, fs: float, *, seed: int = 16) -> Signal:
    """Asystole: a flat line with baseline wander and noise, no complexes."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * fs)) / fs
    return Signal(0.05 * np.sin(2 * np.pi * 0.2 * t) + rng.normal(0, 0.01, len(t)), float(fs), "MLII",
                  "synthetic-asystole")


def _synthetic_segment(scenario: DrillScenario, fs: float) -> Signal:
    if scenario == "vt":
        return synthetic_vt(15.0, fs)
    if scenario == "vf":
        return synthetic_vf(15.0, fs)
    if scenario == "asystole":
        return synthetic_asystole(15.0, fs)
    if scenario == "tachy":
        return synthetic(25.0, fs, episodes=[SyntheticEpisode("tachycardia", 1.0, 24.0)], seed=17)
    if scenario == "af":
        return synthetic(30.0, fs, episodes=[SyntheticEpisode("irregular", 1.0, 29.0)], seed=12)
    if scenario == "brady":
        return synthetic(25.0, fs, episodes=[SyntheticEpisode("bradycardia", 1.0, 24.0)], seed=13)
    return synthetic(15.0, fs, episodes=[SyntheticEpisode("pause", 5.0, 4.0)], seed=14)


def drill_segment(scenario: DrillScenario, fs: float, mitdb_dir: Path | None, vfdb_dir: Path | None = None) -> Signal:
    """An excerpt for the scenario at rate `fs`: real (MIT-BIH, VFDB) where available, synthetic otherwise."""
    if scenario not in EXPECTED_KINDS:
        raise ValueError(f"unknown drill scenario {scenario!r}; expected one of {sorted(EXPECTED_KINDS)}")
    excerpt = REAL_EXCERPTS.get(scenario)
    folder = {"mitdb": mitdb_dir, "vfdb": vfdb_dir}.get(excerpt[0]) if excerpt else None
    if excerpt is not None and folder is not None and (Path(folder) / f"{excerpt[1]}.hea").exists():
        database, record, start, end = excerpt
        signal = load_wfdb(Path(folder) / record, start_s=start, end_s=end)
        out = resample(signal, fs)
        return Signal(out.samples_mv, out.fs, out.lead, f"{database}/{record}@{start:g}s")
    return _synthetic_segment(scenario, fs)
