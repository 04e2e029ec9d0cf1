"""Demo replay starts: where to begin replaying MIT-BIH records so the demo shows alerts quickly.

Chosen from the reference annotations (this picks demo data; detection never sees annotations) and
checked by running the baseline detector over the replay window, so every start listed really alerts.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from shared.ecg.annotations import load_annotations
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import load_wfdb

log = logging.getLogger(__name__)

DEMO_RECORDS = ("203", "207", "201", "210", "221", "232", "205", "223", "202", "233")
DEMO_RHYTHMS = ("VT", "VFL", "AFIB", "AFL", "SVTA", "SBR")
LEAD_IN_S = 5.0  # start this long before the annotated onset
ALERT_WITHIN_S = 30.0


def _alerts_within(path: Path, start_s: float) -> bool:
    from watch_agent.detector import BaselineDetector  # the detector lives with the watch agent

    signal = resample(load_wfdb(path, start_s=start_s, end_s=start_s + ALERT_WITHIN_S), MODEL_FS)
    detector = BaselineDetector(MODEL_FS)
    step = int(MODEL_FS)
    x: np.ndarray = signal.samples_mv
    return any(detector.feed(x[i:i + step]) for i in range(0, len(x), step))


@lru_cache(maxsize=4)
def _demo_starts(mitdb_dir: str) -> tuple[tuple[str, float], ...]:
    starts: list[tuple[str, float]] = []
    for record in DEMO_RECORDS:
        path = Path(mitdb_dir) / record
        if not path.with_suffix(".hea").exists():
            continue
        ann = load_annotations(path)
        onsets = [r.start_s for r in ann.rhythms if r.rhythm in DEMO_RHYTHMS]
        for onset in onsets[:8]:
            start = round(max(0.0, onset - LEAD_IN_S), 1)
            if _alerts_within(path, start):
                starts.append((record, start))
                break
        else:
            log.info("no demo start found for record %s", record)
    return tuple(starts)


def demo_starts(mitdb_dir: Path) -> list[tuple[str, float]]:
    """(record, start_s) pairs whose 30 s replay from start_s makes the baseline detector alert."""
    return list(_demo_starts(str(mitdb_dir)))
