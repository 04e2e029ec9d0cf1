"""A watch's side of the DP forest (`shared.fl.forest`) over the bus: it never trains a model locally; it answers
two release rounds with counts over its own beats — its count table on the public grid, then its beats' counts per
(tree, leaf, class) of the structure and bins the coordinator published. The FL client adds the noise share,
encrypts and sends (`FlClient`, task "release")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.fl.forest import ForestState, leaf_counts, to_coarse
from shared.fl.gam import fine_bins, fine_counts
from shared.messages import RoundPayload
from watch_agent.release_learner import ReleaseOnlyLearner

if TYPE_CHECKING:
    from shared.model.data import BeatSet


class ForestLearner(ReleaseOnlyLearner):
    """`X`: this wearer's feature table (the forest's columns, correlations as distances, computed on its own
    recording alone), `y` its beats' labels 0 … 3."""

    what = "the DP forest"

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.fine = fine_bins(np.asarray(X, dtype=np.float64))
        self.y = np.asarray(y, dtype=np.int64)
        super().__init__()

    @classmethod
    def from_beats(cls, beats: BeatSet, columns: list[int]) -> ForestLearner:
        """The labelled beats of one recording, as the forest reads them (`tree_features` `columns`); beats
        without a class label are left out."""
        from shared.model.tree_features import labelled_rows

        return cls(*labelled_rows(beats, columns, distances=True))

    @property
    def examples(self) -> int:
        return len(self.y)

    def release(self, spec: RoundPayload, global_vector: np.ndarray) -> tuple[np.ndarray, int]:
        request = spec.release
        if request is None or request.kind not in ("forest_counts", "forest_leaves"):
            raise ValueError(f"the DP forest cannot answer a {request.kind if request else 'training'} round")
        state = ForestState.parse(global_vector)
        if state.features != self.fine.shape[1]:
            raise ValueError(f"the forest reads {state.features} features, this watch computes {self.fine.shape[1]}")
        # each release is asked once per training: answering again would let the two noised sums be averaged,
        # the noise halved, and the budget spent twice
        if request.kind == "forest_counts":
            if state.stage != 0:
                raise ValueError("the forest's counts were released already (its bins are published)")
            return fine_counts(self.fine, self.y, state.config.n_classes).ravel(), self.examples
        if state.stage != 1:
            raise ValueError("the forest's bins are not published yet: no leaf counts to give" if state.stage == 0
                             else "the forest's leaves were released already")
        bins = to_coarse(state.coarse, self.fine)
        return leaf_counts(bins, self.y, state.feature, state.cut, state.config).ravel(), self.examples
