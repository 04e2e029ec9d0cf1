"""A federated record-relative beat model on the watch's stream of beats: the additive model (`shared.fl.gam`),
the boosted trees (`shared.fl.trees`) or the DP forest (`shared.fl.forest`), each a `.npz` that says which it is
(`shared.fl.relative_models`).

Their features are relative to the wearer's own recording — the median RR, the median beat, the median width —
which a stream does not have in full. The watch keeps its last `WINDOW_BEATS` featurised beats (about four
minutes at 70 bpm) and computes each new beat's features against them, so the reference follows the wearer as
a recording's medians would. The first beats of a stream are read against only a handful of others; `warm`
says when the reference holds `MIN_REFERENCE` beats."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.fl.relative_models import Kind, load_relative
from shared.model.data import BeatSet
from shared.model.features import BeatFeatures
from shared.model.tree_features import record_features

WINDOW_BEATS = 256
MIN_REFERENCE = 30


class RelativeStream:
    def __init__(self, path: Path | str) -> None:
        model = load_relative(path)
        self.path = model.path
        self.kind: Kind = model.kind
        self.meta = model.meta
        #: class probabilities of feature rows (`tree_features.record_features`' columns)
        self._proba: Callable[[np.ndarray], np.ndarray] = model.proba_of_rows
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
        features = record_features(BeatSet.window(np.stack([r.wave for r in window]),
                                                  np.stack([r.context for r in window]),
                                                  np.array([r.beat.sample for r in window], dtype=np.int64)))
        return int(self._proba(features[-1:])[0].argmax())  # the window is the reference; only the new beat is read
