"""A watch's side of the federated additive beat model (`shared.fl.gam`) over the bus: it never trains a model
locally; it answers release rounds with sums over its own beats — its count table on the public grid once, then,
release by release, its clipped gradient sums over the bins of the term the round names, computed against the
signed global model it holds. The FL client adds the noise share, encrypts and sends (`FlClient`, task "release")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.fl.gam import GamClient, fine_bins, parse_state
from shared.messages import RoundPayload
from watch_agent.release_learner import ReleaseOnlyLearner

if TYPE_CHECKING:
    from shared.model.data import BeatSet


class AdditiveLearner(ReleaseOnlyLearner):
    """`X`: this wearer's feature table (computed on its own recording alone), `y` its beats' labels 0 … 3."""

    what = "the additive model"

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.client = GamClient(fine_bins(np.asarray(X, dtype=np.float64)), np.asarray(y, dtype=np.int64))
        super().__init__()

    @classmethod
    def from_beats(cls, beats: BeatSet, columns: int) -> AdditiveLearner:
        """The labelled beats of one recording, as the additive model reads them (`tree_features`, first
        `columns` columns); beats without a class label are left out."""
        from shared.model.tree_features import labelled_rows

        return cls(*labelled_rows(beats, range(columns), distances=True))

    @property
    def examples(self) -> int:
        return len(self.client.y)

    def release(self, spec: RoundPayload, global_vector: np.ndarray) -> tuple[np.ndarray, int]:
        request = spec.release
        if request is None:
            raise ValueError("not a release round")
        model = parse_state(global_vector)
        features, n_bins, classes = model.shapes.shape
        if self.client.fine.shape[1] != features:
            raise ValueError(f"the global model reads {features} features, this watch computes "
                             f"{self.client.fine.shape[1]}")
        if request.kind == "gam_counts":
            return self.client.counts(classes).ravel(), self.examples
        if request.term >= features:
            raise ValueError(f"term {request.term} of a model of {features} features")
        self.client.start(model.coarse, model.class_weight, classes)
        for f in range(features):  # the logits of the global model it holds, on its own beats
            self.client.raw += model.shapes[f][self.client.bins[:, f]]
        sums = self.client.gradient_sums(self.client.bins[:, request.term], n_bins, spec.clip_norm)
        return sums.ravel(), self.examples
