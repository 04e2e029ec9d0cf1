"""Drill segments spliced into a live stream raise the alert kind the drill promises; demo starts alert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.ecg.drill import EXPECTED_KINDS, REAL_EXCERPTS, DrillScenario, drill_segment
from shared.ecg.episodes import demo_starts
from shared.ecg.signal import MODEL_FS
from shared.ecg.sources import synthetic
from shared.messages import DRILL_SCENARIOS
from watch_agent.detector import BaselineDetector

SCENARIOS: list[DrillScenario] = list(DRILL_SCENARIOS)  # type: ignore[arg-type]


def _kinds_after_splice(segment: np.ndarray) -> set[str]:
    live = synthetic(30, MODEL_FS, seed=5).samples_mv
    tail = synthetic(15, MODEL_FS, seed=6).samples_mv
    x = np.concatenate([live, segment, tail])
    det = BaselineDetector(MODEL_FS)
    step = int(0.2 * MODEL_FS)
    kinds: set[str] = set()
    for i in range(0, len(x), step):
        kinds |= {e.kind for e in det.feed(x[i:i + step]) if e.onset_s >= 25}
    return kinds


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_real_drill_raises_expected_kind(mitdb: Path, scenario: DrillScenario) -> None:
    seg = drill_segment(scenario, MODEL_FS, mitdb, mitdb.parent / "vfdb")
    assert seg.fs == MODEL_FS and 15 <= seg.duration_s <= 30
    assert seg.name.startswith(("mitdb/", "vfdb/")) == (scenario in REAL_EXCERPTS)
    assert _kinds_after_splice(seg.samples_mv) & EXPECTED_KINDS[scenario]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_synthetic_drill_raises_expected_kind(scenario: DrillScenario) -> None:
    seg = drill_segment(scenario, MODEL_FS, None)
    assert seg.fs == MODEL_FS and 15 <= seg.duration_s <= 30
    assert _kinds_after_splice(seg.samples_mv) & EXPECTED_KINDS[scenario]


def test_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="unknown drill scenario"):
        drill_segment("torsades", MODEL_FS, None)  # type: ignore[arg-type]


def test_demo_starts(mitdb: Path) -> None:
    starts = demo_starts(mitdb)
    assert len(starts) >= 5
    assert all((mitdb / f"{record}.hea").exists() and start >= 0 for record, start in starts)
