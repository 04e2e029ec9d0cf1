"""The federated additive beat model (`shared.fl.gam`, a `.npz`) on the watch's stream of beats.

Its features are relative to the wearer's own recording — the median RR, the median beat, the median width —
which a stream does not have in full. The watch keeps its last `WINDOW_BEATS` featurised beats (about four
minutes at 70 bpm) and computes each new beat's features against them, so the reference follows the wearer as
a recording's medians would. The first beats of a stream are read against only a handful of others; `warm`
says when the reference holds `MIN_REFERENCE` beats."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from shared.fl import gam
from shared.model.features import BeatFeatures

WINDOW_BEATS = 256
MIN_REFERENCE = 30


class AdditiveStream:
    def __init__(self, path: Path | str) -> None:
        self.model, self.columns, self.meta = gam.load(path)
        self.path = Path(path)
        self._rows: deque[BeatFeatures] = deque(maxlen=WINDOW_BEATS)

    @property
    def warm(self) -> bool:
        return len(self._rows) >= MIN_REFERENCE

    def classify(self, rows: list[BeatFeatures]) -> np.ndarray:
        """Class index (0 N, 1 S, 2 V, 3 F) of each new beat, read against the wearer's recent beats up to and
        including it (never later ones: the answer does not depend on how the stream was chunked)."""
        return np.array([self._one(row) for row in rows], dtype=np.int64)

    def _one(self, row: BeatFeatures) -> int:
        self._rows.append(row)
        window = list(self._rows)
        proba = gam.predict_rows(self.model, self.columns, np.stack([r.wave for r in window]),
                                 np.stack([r.context for r in window]),
                                 np.array([r.beat.sample for r in window], dtype=np.int64))
        return int(proba[-1].argmax())
