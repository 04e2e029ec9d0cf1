"""A watch's side of the federated trees (`shared.fl.trees`, ADR 0020) over the bus: it never trains a model
locally; it answers release rounds with sums over its own beats — its class counts, its beat counts over the public
sketch grid, then, split by split, the gradient and hessian sums of its beats in the nodes the round names, computed
against the signed training state it holds (`shared.fl.tree_state`). The FL client adds the noise share, encrypts
and sends (`FlClient`, task "release")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.fl.tree_state import TreeState
from shared.fl.trees import Client, bin_features, client_histograms, grid_counts, position_in, sketch_grid
from shared.messages import RoundPayload
from watch_agent.release_learner import ReleaseOnlyLearner

if TYPE_CHECKING:
    from shared.model.data import BeatSet


class TreeLearner(ReleaseOnlyLearner):
    """`X`: this wearer's feature table (computed on its own recording alone), `y` its beats' labels 0 … 3."""

    what = "the federated trees model"

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.int64)
        if self.X.ndim != 2 or len(self.X) != len(self.y):
            raise ValueError(f"features {self.X.shape} and labels {self.y.shape} do not match")
        super().__init__()
        # what one release leaves for the next: the binned beats (per edges), their scores after the finished
        # rounds (per round count), and each beat's node in the tree being grown (per round and class)
        # — each keyed by the training (`TreeState.training`) too, so a learner that meets a second training
        # never reuses the first one's
        self._bins: tuple[bytes, np.ndarray] | None = None
        self._raw: tuple[tuple[int, bytes], int, np.ndarray] | None = None
        self._node: tuple[tuple[int, bytes], int, int, np.ndarray] | None = None

    @classmethod
    def from_beats(cls, beats: BeatSet, columns: list[int] | None = None) -> TreeLearner:
        """The labelled beats of one recording, as the trees read them (`tree_features`, the given columns or
        all); beats without a class label are left out."""
        from shared.model.tree_features import labelled_rows

        return cls(*labelled_rows(beats, columns))

    @property
    def examples(self) -> int:
        return len(self.y)

    def release(self, spec: RoundPayload, global_vector: np.ndarray) -> tuple[np.ndarray, int]:
        request = spec.release
        if request is None:
            raise ValueError("not a release round")
        state = TreeState.parse(global_vector)
        if state.features != self.X.shape[1]:
            raise ValueError(f"the trees read {state.features} features, this watch computes {self.X.shape[1]}")
        if len(self.y) and int(self.y.max()) >= state.n_classes:
            raise ValueError(f"labels up to {int(self.y.max())} for a model of {state.n_classes} classes")
        if request.kind == "tree_classes":  # one beat adds 1 to one count
            return np.bincount(self.y, minlength=state.n_classes)[: state.n_classes].astype(np.float64), self.examples
        if request.kind == "tree_sketch":  # one beat adds 1 to one cell of each feature
            return grid_counts(self.X, sketch_grid(request.cells)).ravel(), self.examples
        if request.kind != "tree_histogram":
            raise ValueError(f"a trees learner cannot answer a {request.kind} release")
        return self._histogram(state, request.klass, request.nodes, request.counts, spec.clip_norm), self.examples

    def _histogram(self, state: TreeState, klass: int, nodes: list[int], counts: bool, clip: float) -> np.ndarray:
        if not state.ready or state.rounds_done >= state.rounds or klass >= state.n_classes:
            raise ValueError(f"no tree {klass} to grow in this state (round {state.rounds_done} of {state.rounds})")
        tree = state.trees[state.rounds_done][klass]
        if any(n >= len(tree.feature) or tree.feature[n] >= 0 for n in nodes):
            raise ValueError(f"nodes {nodes}: not all leaves of the tree as grown so far")
        edges_key = state.edges.astype(np.float32).tobytes()
        if self._bins is None or self._bins[0] != edges_key:
            self._bins, self._raw, self._node = (edges_key, bin_features(self.X, state.edges)), None, None
        bins = self._bins[1]
        key = (state.training, edges_key)
        if self._raw is None or self._raw[0] != key or self._raw[1] > state.rounds_done:
            self._raw = (key, 0, np.zeros((len(self.y), state.n_classes)))
        if self._raw[1] < state.rounds_done:  # add the rounds finished since the last release
            self._raw = (key, state.rounds_done, state.raw(bins, start=self._raw[1], base=self._raw[2]))
        client = Client(bins, self.y, state.class_weight[self.y])
        client.raw = self._raw[2]
        g, h = client.gradients(klass)
        g, h = np.clip(g, -clip, clip), np.clip(h, 0.0, clip)  # one beat's part of every sum, bounded
        where = (key, state.rounds_done, klass)
        start = self._node[3] if self._node is not None and self._node[:3] == where else None
        node = tree.descend(bins, start)
        self._node = (*where, node)
        return client_histograms(bins, position_in(node, nodes), g, h, len(nodes), state.n_bins,
                                 counts=counts).ravel()
