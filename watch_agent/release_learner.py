"""What the learners that answer release rounds only (the federated additive model, the federated trees) share:
they hold the signed global vector for the FL client and never train locally."""

from __future__ import annotations

import numpy as np

from shared.messages import RoundPayload


class ReleaseOnlyLearner:
    #: said when a FedAvg round reaches it ("the … are not trained locally")
    what = "this model"

    def __init__(self) -> None:
        self._vector: np.ndarray | None = None

    def load_vector(self, vector: np.ndarray) -> None:
        self._vector = np.asarray(vector, dtype=np.float32).copy()

    def vector(self) -> np.ndarray:
        if self._vector is None:
            raise RuntimeError("no global model loaded")
        return self._vector

    def train(self, spec: RoundPayload, global_vector: np.ndarray) -> int:
        raise TypeError(f"{self.what} is not trained locally: it answers release rounds")
