"""The federated trees' public training state as one float32 vector — what the coordinator signs and publishes
after every decision, and what each watch computes its next release against (ADR 0020).

Layout: a header, the class weights, the bin edges, then a fixed number of tree slots (rounds × classes, each
`max_nodes` nodes of feature, threshold bin, left, right, value) and each slot's node count. The vector's length
never changes during a training, so every version is a lossless delta of the one before (`model_delta_bits=0`):
only the nodes a decision wrote travel. Node indices and bins are small integers, exact in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.fl.trees import BoostedModel, Tree, TreeConfig, checked_tree

KIND = 7_170_001.0  # first value of every state vector: a vector of another model is refused, not misread
_HEADER = 10  # kind, features, n_bins, n_classes, rounds, max_nodes, rounds_done, learning_rate, ready, training
_NODE = 5  # feature, threshold_bin, left, right, value


class TreeStateError(ValueError):
    """A vector that is not a trees training state (another model's, truncated, or inconsistent)."""


def max_nodes(config: TreeConfig) -> int:
    """Nodes one tree of `config` can have: every level full, or two per split under a leaf cap."""
    full = 2 ** (config.max_depth + 1) - 1
    return min(full, 2 * config.max_leaves - 1) if config.max_leaves is not None else full


@dataclass
class TreeState:
    """`ready`: class weights and edges are set (the count and sketch releases are done); `rounds_done`: the rounds
    whose trees every watch adds to its beats' scores — the round being grown is the next one."""

    features: int
    n_bins: int  # with bin 0, for missing values
    n_classes: int
    rounds: int
    max_nodes: int
    learning_rate: float
    class_weight: np.ndarray  # (n_classes,)
    edges: np.ndarray  # (features, n_bins − 2)
    trees: list[list[Tree]]  # rounds × n_classes slots (empty trees not yet grown)
    rounds_done: int = 0
    ready: bool = False
    #: which training this is (a random integer, exact in float32): what a watch caches is only reused within one
    training: int = 0

    @classmethod
    def empty(cls, config: TreeConfig, features: int, n_bins: int) -> TreeState:
        if not 3 <= n_bins <= 256:
            raise ValueError(f"n_bins {n_bins}: between 3 and 256 (bin 0 is for missing values)")
        return cls(features, n_bins, config.n_classes, config.rounds, max_nodes(config), config.learning_rate,
                   np.ones(config.n_classes), np.zeros((features, n_bins - 2)),
                   [[Tree() for _ in range(config.n_classes)] for _ in range(config.rounds)],
                   training=int(np.random.default_rng().integers(1, 2 ** 24)))

    def vector(self) -> np.ndarray:
        header = [KIND, self.features, self.n_bins, self.n_classes, self.rounds, self.max_nodes, self.rounds_done,
                  self.learning_rate, float(self.ready), float(self.training)]
        nodes = np.zeros((self.rounds, self.n_classes, self.max_nodes, _NODE))
        sizes = np.zeros((self.rounds, self.n_classes))
        for r, round_trees in enumerate(self.trees):
            for k, tree in enumerate(round_trees):
                n = len(tree.feature)
                if n > self.max_nodes:
                    raise ValueError(f"a tree of {n} nodes in slots of {self.max_nodes}")
                sizes[r, k] = n
                if n:
                    nodes[r, k, :n] = np.column_stack([tree.feature, tree.threshold_bin, tree.left, tree.right,
                                                       tree.value])
        parts = [np.asarray(header, dtype=np.float64), self.class_weight, self.edges.ravel(), sizes.ravel(),
                 nodes.ravel()]
        return np.concatenate(parts).astype(np.float32)

    @classmethod
    def parse(cls, vector: np.ndarray) -> TreeState:
        v = np.asarray(vector, dtype=np.float64).ravel()
        if len(v) < _HEADER or v[0] != KIND or not np.isfinite(v[:_HEADER]).all():
            raise TreeStateError("not a federated trees state")
        features, n_bins, n_classes, rounds, slots, done = (int(x) for x in v[1:7])
        expected = _HEADER + n_classes + features * (n_bins - 2) + rounds * n_classes * (1 + slots * _NODE)
        if min(features, n_classes, rounds, slots) < 1 or not 3 <= n_bins <= 256 or len(v) != expected \
                or not 0 <= done <= rounds:
            raise TreeStateError(f"an inconsistent trees state ({len(v)} values)")
        at = _HEADER
        weight = v[at:at + n_classes]
        at += n_classes
        edges = v[at:at + features * (n_bins - 2)].reshape(features, n_bins - 2)
        at += features * (n_bins - 2)
        # a feature no beat has gets edges at +inf (`edges_from_counts`): all of its beats share one bin
        if not (np.isfinite(v[:_HEADER + n_classes]).all() and np.isfinite(v[at:]).all()) or np.isnan(edges).any():
            raise TreeStateError("a trees state with non-finite values outside its bin edges")
        sizes = v[at:at + rounds * n_classes].reshape(rounds, n_classes).astype(np.int64)
        at += rounds * n_classes
        nodes = v[at:].reshape(rounds, n_classes, slots, _NODE)
        if (sizes > slots).any() or (sizes < 0).any():
            raise TreeStateError("a tree slot claims more nodes than it has")
        trees = [[_tree(nodes[r, k, : sizes[r, k]], features, n_bins) for k in range(n_classes)]
                 for r in range(rounds)]
        if (sizes[:done] < 1).any():
            raise TreeStateError("a finished round with a tree of no nodes")
        return cls(features, n_bins, n_classes, rounds, slots, float(v[7]), weight, edges, trees, done,
                   bool(v[8]), int(v[9]))

    def raw(self, bins: np.ndarray, *, start: int = 0, base: np.ndarray | None = None) -> np.ndarray:
        """The scores of binned beats after the finished rounds — from `base`, the scores after `start` rounds."""
        out = np.zeros((len(bins), self.n_classes)) if base is None else base.copy()
        for round_trees in self.trees[start:self.rounds_done]:
            for k, tree in enumerate(round_trees):
                out[:, k] += self.learning_rate * tree.predict(bins)
        return out

    def model(self) -> BoostedModel:
        """The finished rounds as the product's model (`shared.fl.trees.save_model` writes it)."""
        return BoostedModel(self.edges.copy(), [list(t) for t in self.trees[: self.rounds_done]], self.learning_rate,
                            self.n_classes)


def _tree(rows: np.ndarray, features: int, n_bins: int) -> Tree:
    tree = checked_tree(rows[:, 0].astype(np.int64), rows[:, 1], rows[:, 2].astype(np.int64),
                        rows[:, 3].astype(np.int64), rows[:, 4], features=features, n_bins=n_bins)
    if tree is None:
        raise TreeStateError("a tree points outside itself, back at a node before it, or at a feature or bin "
                             "the state does not have")
    return tree
