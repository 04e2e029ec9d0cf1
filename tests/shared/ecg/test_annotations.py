"""Rhythm lookup on reference annotations (pure logic, no record needed)."""

from __future__ import annotations

import numpy as np

from shared.ecg.annotations import Annotations, RhythmInterval


def test_rhythm_at_finds_the_interval_holding_a_time() -> None:
    ann = Annotations("x", 360.0, np.zeros(0, np.int64), (), [
        RhythmInterval("N", 2.0, 10.0), RhythmInterval("AFL", 10.0, 12.5), RhythmInterval("N", 12.5, 30.0),
    ], 30.0)
    assert ann.rhythm_at(1.0) is None  # before the first rhythm mark
    found = [ann.rhythm_at(t) for t in (2.0, 9.99, 10.0, 12.4, 12.5)]
    assert [r.rhythm if r else None for r in found] == ["N", "N", "AFL", "AFL", "N"]
    assert ann.rhythm_at(30.0) is None  # the end is open
