"""The torch learner behind a watch's FL client: the shared BeatNet trained on the wearer's own beats."""

from __future__ import annotations

import threading

import numpy as np

from shared.messages import RoundPayload
from shared.model.data import BeatSet
from shared.model.net import BeatNet, NetConfig
from shared.model.serialize import load_vector, parameters_vector
from shared.model.train import TrainResult, Weighting, train_local

#: One machine may host many simulated watches: their training takes turns, as it would on separate
#: devices in parallel, instead of thrashing two cores with twenty-two threads.
TRAIN_LOCK = threading.Lock()


class BeatNetLearner:
    def __init__(self, data: BeatSet, *, config: NetConfig | None = None, seed: int = 0,
                 lock: threading.Lock | None = TRAIN_LOCK, class_weighting: Weighting = "sqrt",
                 augment: bool = True) -> None:
        self.model = BeatNet(config)
        self.class_weighting: Weighting = class_weighting
        self.augment = augment
        self.data = data
        self.seed = seed
        self.lock = lock
        self.last_loss: float | None = None

    def load_vector(self, vector: np.ndarray) -> None:
        load_vector(self.model, vector)

    def vector(self) -> np.ndarray:
        return parameters_vector(self.model)

    def train(self, spec: RoundPayload, global_vector: np.ndarray) -> int:
        mu = spec.mu if spec.algorithm == "fedprox" else 0.0
        if self.lock is not None:
            with self.lock:
                result = self._train(spec, mu)
        else:
            result = self._train(spec, mu)
        self.last_loss = result.loss
        return result.n

    def _train(self, spec: RoundPayload, mu: float) -> TrainResult:
        return train_local(self.model, self.data, epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr,
                           mu=mu, max_beats=spec.max_beats, seed=self.seed * 1000 + spec.round_id,
                           class_weighting=self.class_weighting, augment=self.augment)
