"""Horizontal federated gradient boosting (SecureBoost-style, histogram based): the wearers keep their beats,
only sums of gradient and hessian histograms leave them, and those sums are all the coordinator needs.

One round grows one tree per class (softmax loss). For each level, every client bins its beats' gradients and
hessians by (node, feature, bin) — a vector the existing packed-Paillier path can encrypt and the edge can sum
blind — and the coordinator, from the *sum*, picks each node's best split (XGBoost's gain with L2 `lam`) and
sends the splits back; leaves get −G/(H + lam). Because sums of per-client histograms equal the histogram of
the pooled beats, the federated model is the model a central trainer with the same bins would grow: federation
costs no accuracy here, only rounds of messages. Bin edges come from a federated sketch (`merge_sketches`):
each client sends per-feature quantiles of its own values with its count (its 0 and 1 quantiles are its most
extreme beats' values: this path has no DP). With DP the edges come from a private sketch
(`FederatedBoosting.private_edges`): each client's beat counts over a fine data-independent grid, summed and
noised like any release and accounted by `dp_epsilon`; the quantile edges are post-processing of that sum.

Two growth policies (`TreeConfig.max_leaves`): level-wise, one release per level with every open node's
histogram; or best-first as scikit-learn's HistGradientBoosting grows (a leaf cap, a minimum of beats a leaf,
from a third histogram of counts), one release per split holding the smaller child's histogram only — the
coordinator takes the other child's as the parent's minus it.

Pure numpy, no bus: `FederatedBoosting.fit` runs the protocol in process over `Client`s (bench/fl_trees.py);
`client_histograms` and `best_splits` are the two halves the bus version will call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shared.crypto.paillier import PaillierPrivateKey, PaillierPublicKey
    from shared.model.data import BeatSet

N_BINS = 64  # bins per feature; bin 0 holds missing values
SKETCH_POINTS = 65


@dataclass(frozen=True, slots=True)
class TreeConfig:
    rounds: int = 200
    max_depth: int = 5
    learning_rate: float = 0.1
    lam: float = 1.0  # L2 on leaf values
    min_hessian: float = 1.0  # a child needs this much hessian to exist
    n_classes: int = 4
    #: sample-level DP on every released histogram: each beat's weighted gradient and hessian are clipped to
    #: `clip`, and N(0, (noise_multiplier · clip · √(2 · features))²) is added to each summed entry (0: off)
    noise_multiplier: float = 0.0
    clip: float = 1.0
    seed: int = 0  # public draws (beat sampling); never the DP noise
    #: the DP noise's generator: None (the default) seeds it from OS entropy, as a deployment must — noise drawn
    #: from a seed anyone can read could be regenerated and subtracted. An int only for reproducible tests.
    noise_seed: int | None = None
    #: each round every client takes each of its beats with this probability (Poisson sampling, a fresh draw per
    #: round, kept on the device): with DP it amplifies privacy, so more rounds fit one budget
    sample_rate: float = 1.0
    #: None: grow every node to `max_depth` (level-wise, one release per level). An int: grow best-first, the
    #: leaf whose split gains most next, until this many leaves (scikit-learn's HistGradientBoosting); each split
    #: then costs one release, of the smaller child's histogram only — the coordinator gets the other child's by
    #: subtracting it from the parent's (LightGBM's histogram subtraction), so a beat is in at most depth + 1
    #: releases per tree, as level-wise
    max_leaves: int | None = None
    #: a child needs this many beats (0: no such rule). Above 0 the clients release a third histogram, of beat
    #: counts per (node, feature, bin), beside the gradient and hessian sums
    min_samples_leaf: int = 0
    #: the bin edges were released by `FederatedBoosting.private_edges` under this configuration's noise: one more
    #: Gaussian release for `dp_epsilon` to account (False: the edges are public, or the training has no DP)
    private_edges: bool = False

    def __post_init__(self) -> None:
        if self.max_leaves is not None and self.max_leaves < 2:
            raise ValueError("max_leaves must be at least 2 (or None for level-wise growth)")
        if self.min_samples_leaf and self.sample_rate < 1:
            raise ValueError("min_samples_leaf counts every beat, drawn or not: use it with sample_rate 1")
        if self.noise_multiplier and (self.max_leaves is not None or self.min_samples_leaf):
            raise ValueError("sample-level DP is accounted for level-wise growth without beat counts only: "
                             "set max_leaves=None and min_samples_leaf=0")


def client_sketch(X: np.ndarray, points: int = SKETCH_POINTS) -> tuple[np.ndarray, int]:
    """Per-feature quantiles (`points` each, NaN-free columns only) of one client's values, and its count. About
    one point per bin wanted: finer bins need a finer sketch."""
    q = np.linspace(0, 1, points)
    with np.errstate(all="ignore"):
        quantiles = np.nanquantile(X, q, axis=0).T if len(X) else np.full((X.shape[1], points), np.nan)
    return quantiles.astype(np.float64), len(X)


def merge_sketches(sketches: Sequence[tuple[np.ndarray, int]], n_bins: int = N_BINS) -> np.ndarray:
    """Bin edges (features, n_bins − 2) from the clients' quantile sketches: each sketch is a client's CDF
    (piecewise linear through its quantiles); their mixture, weighted by the clients' counts, is inverted at
    the bin targets — the pooled data's quantiles, approximately, without pooling it."""
    q = np.linspace(0, 1, sketches[0][0].shape[1])
    targets = np.linspace(0, 1, n_bins)[1:-1]  # n_bins − 2 edges: bins 1 … n_bins − 1 (0: missing)
    features = sketches[0][0].shape[0]
    edges = np.empty((features, len(targets)))
    for f in range(features):
        parts = [(p[f], n) for p, n in sketches if n and np.isfinite(p[f]).all()]
        if not parts:
            edges[f] = np.inf
            continue
        grid = np.unique(np.concatenate([p for p, _ in parts]))
        cdf = sum(n * np.interp(grid, p, q, left=0.0, right=1.0) for p, n in parts) / sum(n for _, n in parts)
        edges[f] = np.interp(targets, np.maximum.accumulate(cdf), grid)
    return edges


def public_edges(features: int, n_bins: int = N_BINS, span: float = 4.0) -> np.ndarray:
    """Data-independent bin edges, the same for every feature: evenly spaced in sign(x)·log(1 + |x|) over
    ±`span` (|x| up to e^span − 1 ≈ 54). With sample-level DP the bins must not depend on anyone's beats — a
    sketch of them would be a release of its own; the features are ratios and correlations near 1, which this
    grid resolves finely."""
    t = np.linspace(-span, span, n_bins)[1:-1]
    return np.repeat((np.sign(t) * np.expm1(np.abs(t)))[None, :], features, axis=0)


#: cells of the private sketch's grid (`public_edges`' spacing: ratios near 1 resolved to ≈ 3 %). Finer cells
#: resolve more, but each adds its noise to the running sum the edges are read from. Chosen on DS1
#: (`bench/_tree_bins.py --study dp-cells`: leave-one-record-out, ε = 8, the DP trees' size, mean of 5 runs with
#: fresh noise): 512 cells VEB F1 0.884, 1,024 0.879, 2,048 0.868 — the fixed grid 0.849
SKETCH_GRID_CELLS = 512


def sketch_grid(cells: int = SKETCH_GRID_CELLS) -> np.ndarray:
    """The private sketch's grid: `cells` − 1 data-independent edges, shared by every feature."""
    return public_edges(1, cells + 1)[0]


def grid_counts(X: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(features, cells) one client's beat counts per grid cell (missing values counted nowhere): each beat adds
    1 to one cell of each feature, so the vector's L2 sensitivity to one beat is √features."""
    counts = np.zeros((X.shape[1], len(grid) + 1))
    for f in range(X.shape[1]):
        column = X[:, f]
        cells = np.searchsorted(grid, column[np.isfinite(column)], side="right")
        counts[f] = np.bincount(cells, minlength=len(grid) + 1)
    return counts


def edges_from_counts(counts: np.ndarray, grid: np.ndarray, n_bins: int) -> np.ndarray:
    """(features, n_bins − 2) quantile edges from summed (possibly noised) grid counts. The noisy counts are
    used as they are, negative ones included: their running sum stays unbiased (zero-mean noise), while
    clipping each cell at 0 — or dropping cells under a floor — adds or removes mass wherever the data is thin
    and drags every edge (measured in tests). Only the running sum is made non-decreasing. Post-processing of
    the release: it costs no privacy."""
    targets = np.linspace(0, 1, n_bins)[1:-1]
    edges = np.empty((counts.shape[0], len(targets)))
    for f, row in enumerate(counts):
        total = row.sum()
        if total <= 0:
            edges[f] = np.inf
            continue
        cdf = np.maximum.accumulate(np.cumsum(row)) / total
        cell = np.minimum(np.searchsorted(cdf, targets, side="left"), len(grid) - 1)
        edges[f] = grid[cell]  # a cell's upper end: everything in it and below falls in the lower bins
    return edges


def class_weights(counts: np.ndarray, *, power: float = 1.0, cap: float = np.inf) -> np.ndarray:
    """Class weights from the summed (or noised) class counts: balanced (total / (classes × count)) to `power`
    (½: square-root balanced), capped at `cap` — under DP the clip, and so the noise, scales with the largest."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.asarray(np.minimum((counts.sum() / (len(counts) * np.maximum(counts, 1.0))) ** power, cap))


def releases_of(config: TreeConfig) -> int:
    """Histogram releases a training makes at most: one per level of each class's tree each round, plus the
    class counts (released once, noised the same way, so that the weights leak nothing either), and the private
    sketch of the bin edges if there is one."""
    return config.rounds * config.n_classes * (config.max_depth + 1) + 1 + int(config.private_edges)


def dp_epsilon(config: TreeConfig, noise_multiplier: float, *, delta: float = 1e-5) -> float:
    """ε (RDP accountant) of a training: the class counts (one Gaussian release), the private sketch of the bin
    edges if any (another), then each round's n_classes × (depth + 1) Gaussian releases over the same Poisson
    sample of beats — together one Gaussian of multiplier z / √L on a sample drawn with `sample_rate`."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    per_round = config.n_classes * (config.max_depth + 1)
    round_event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier / np.sqrt(per_round))
    if config.sample_rate < 1:
        round_event = dp_accounting.PoissonSampledDpEvent(config.sample_rate, round_event)
    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), 1 + int(config.private_edges))
    accountant.compose(round_event, config.rounds)
    return float(accountant.get_epsilon(delta))


def noise_multiplier_for(epsilon: float, config: TreeConfig, *, delta: float = 1e-5) -> float:
    """The smallest Gaussian noise multiplier that keeps `config`'s training within (ε, δ)."""
    from shared.fl.accounting import smallest_multiplier

    return smallest_multiplier(lambda z: dp_epsilon(config, z, delta=delta), epsilon, steps=60)


def bin_features(X: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n, features) uint8 bins: 0 for missing, 1 … n_bins − 1 by the edges."""
    binned = np.zeros(X.shape, dtype=np.uint8)
    for f in range(X.shape[1]):
        column = X[:, f]
        ok = np.isfinite(column)
        binned[ok, f] = 1 + np.searchsorted(edges[f], column[ok], side="right")
    return binned


def softmax(raw: np.ndarray) -> np.ndarray:
    z = raw - raw.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass(slots=True)
class Client:
    """One wearer: their binned beats, labels and per-beat weights (class weights, agreed federated)."""

    bins: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    raw: np.ndarray = field(init=False)
    node: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.raw = np.zeros((len(self.y), 0))
        self.node = np.zeros(len(self.y), dtype=np.int64)

    def start(self, n_classes: int) -> None:
        self.raw = np.zeros((len(self.y), n_classes))

    def gradients(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Softmax gradient and hessian of class k for every beat, weighted."""
        p = softmax(self.raw)[:, k]
        onehot = (self.y == k).astype(np.float64)
        return (p - onehot) * self.weight, np.maximum(p * (1 - p), 1e-6) * self.weight


def client_histograms(bins: np.ndarray, node: np.ndarray, grad: np.ndarray, hess: np.ndarray, n_nodes: int,
                      n_bins: int = N_BINS, *, counts: bool = False) -> np.ndarray:
    """(2, n_nodes, features, n_bins): this client's gradient and hessian sums per (node, feature, bin) — the
    only thing about its beats that leaves the device. Beats in no open node (`node` < 0) are left out.
    `counts`: a third channel, the number of beats per (node, feature, bin)."""
    _n, features = bins.shape
    live = node >= 0
    index = ((node[live, None] * features + np.arange(features)[None, :]) * n_bins + bins[live].astype(np.int64)
             ).ravel()
    size = n_nodes * features * n_bins
    g = np.bincount(index, weights=np.repeat(grad[live], features), minlength=size)
    h = np.bincount(index, weights=np.repeat(hess[live], features), minlength=size)
    channels = [g, h, np.bincount(index, minlength=size).astype(np.float64)] if counts else [g, h]
    return np.stack(channels).reshape(len(channels), n_nodes, features, n_bins)


@dataclass(frozen=True, slots=True)
class Split:
    feature: int
    threshold_bin: int  # beats with bin ≤ this go left (missing values, bin 0, always go left)
    gain: float


def best_splits(histograms: np.ndarray, lam: float, min_hessian: float, min_count: float = 0.0
                ) -> list[Split | None]:
    """Each node's best split from the summed histograms (None: no split gains anything). With a third channel
    (beat counts), a split that leaves fewer than `min_count` beats on either side is not a split."""
    g, h = histograms[0], histograms[1]
    gl, hl = np.cumsum(g, axis=2)[:, :, :-1], np.cumsum(h, axis=2)[:, :, :-1]
    gt, ht = g.sum(axis=2, keepdims=True), h.sum(axis=2, keepdims=True)
    gr, hr = gt - gl, ht - hl
    with np.errstate(divide="ignore", invalid="ignore"):  # lam = 0 and an empty side: masked just below
        gain = gl ** 2 / (hl + lam) + gr ** 2 / (hr + lam) - gt ** 2 / (ht + lam)
    refused = (hl < min_hessian) | (hr < min_hessian) | ~np.isfinite(gain)
    if min_count and len(histograms) > 2:
        nl = np.cumsum(histograms[2], axis=2)[:, :, :-1]
        # a summed count is exact in the clear, a dequantised one within a hair of its integer
        refused |= (nl < min_count - 0.5) | (histograms[2].sum(axis=2, keepdims=True) - nl < min_count - 0.5)
    gain[refused] = -np.inf
    out: list[Split | None] = []
    for node in range(g.shape[0]):
        flat = int(np.argmax(gain[node]))
        f, b = divmod(flat, gain.shape[2])
        best = float(gain[node, f, b])
        out.append(Split(f, b, best) if np.isfinite(best) and best > 1e-9 else None)
    return out


@dataclass(slots=True)
class Tree:
    """Level-order nodes: internal nodes split, leaves carry a value."""

    feature: list[int] = field(default_factory=list)
    threshold_bin: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def add(self) -> int:
        """A new node (a leaf until it is given a split); its index."""
        for column in (self.feature, self.left, self.right):
            column.append(-1)
        self.threshold_bin.append(0)
        self.value.append(0.0)
        return len(self.feature) - 1

    def split(self, node: int, split: Split) -> tuple[int, int]:
        """Give leaf `node` its split; its two new children (leaves)."""
        left, right = self.add(), self.add()
        self.feature[node], self.threshold_bin[node] = split.feature, split.threshold_bin
        self.left[node], self.right[node] = left, right
        return left, right

    def descend(self, bins: np.ndarray, node: np.ndarray | None = None) -> np.ndarray:
        """Each beat's leaf of the tree as grown so far, walking on from `node` (default: the root) — a client
        that kept its beats' nodes from its last release only walks the splits published since."""
        node = np.zeros(len(bins), dtype=np.int64) if node is None else node.copy()
        feature, threshold = np.asarray(self.feature), np.asarray(self.threshold_bin)
        left, right = np.asarray(self.left), np.asarray(self.right)
        for _ in range(len(self.feature)):  # children come after their parent: a walk ends within that many
            inner = feature[node] >= 0
            if not inner.any():
                break
            idx = np.nonzero(inner)[0]
            go_left = bins[idx, feature[node[idx]]] <= threshold[node[idx]]
            node[idx] = np.where(go_left, left[node[idx]], right[node[idx]])
        return node

    def predict(self, bins: np.ndarray) -> np.ndarray:
        return np.asarray(self.value)[self.descend(bins)]


@dataclass(slots=True)
class BoostedModel:
    edges: np.ndarray
    trees: list[list[Tree]]  # per round, one per class
    learning_rate: float
    n_classes: int
    #: which of `tree_features`' columns the trees read, in order (None: all of them) — the DP trees read eight
    columns: tuple[int, ...] | None = None
    _flat: tuple[tuple[tuple[int, int], ...], dict[str, np.ndarray]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Summed scaled leaf values per class. Every tree is walked at once — one numpy step per level, not per
        tree — so a watch reading one beat through 800 trees pays for ~7 steps, not 5,000; rows go in chunks so
        that a whole database's beats × 800 trees stay small in memory."""
        out = np.zeros((len(X), self.n_classes))
        flat = self._flattened()
        if not len(X) or not len(flat["root"]):
            return out
        for start in range(0, len(X), 4096):
            bins = bin_features(X[start:start + 4096], self.edges)
            rows = np.arange(len(bins))[:, None]
            node = np.broadcast_to(flat["root"], (len(bins), len(flat["root"]))).copy()
            for _ in range(64):  # a checked or trained tree's children come after their parent: walks end
                feature = flat["feature"][node]
                inner = feature >= 0
                if not inner.any():
                    break
                go_left = bins[rows, np.where(inner, feature, 0)] <= flat["threshold"][node]
                node = np.where(inner, np.where(go_left, flat["left"][node], flat["right"][node]), node)
            values = flat["value"][node]
            for k in range(self.n_classes):
                out[start:start + len(bins), k] = self.learning_rate * values[:, flat["cls"] == k].sum(axis=1)
        return out

    def _flattened(self) -> dict[str, np.ndarray]:
        """Every tree's nodes end to end, children as global indices; rebuilt whenever the trees differ from the
        ones it was built from (a round added or replaced, a tree grown in place)."""
        trees = [(k, tree) for round_trees in self.trees for k, tree in enumerate(round_trees)]
        key = tuple((id(tree), len(tree.feature)) for _, tree in trees)
        if self._flat is not None and self._flat[0] == key:
            return self._flat[1]
        sizes = np.array([len(tree.feature) for _, tree in trees], dtype=np.int64)
        offsets = np.cumsum(sizes) - sizes

        def joined(name: str, shift: bool) -> np.ndarray:
            parts = [np.asarray(getattr(tree, name), dtype=np.float64 if name == "value" else np.int64)
                     for _, tree in trees]
            if shift:
                parts = [np.where(part >= 0, part + offset, part) for part, offset in zip(parts, offsets, strict=True)]
            return np.concatenate(parts) if parts else np.zeros(0)

        flat = {"root": offsets, "cls": np.array([k for k, _ in trees], dtype=np.int64),
                "feature": joined("feature", False), "threshold": joined("threshold_bin", False),
                "left": joined("left", True), "right": joined("right", True), "value": joined("value", False)}
        self._flat = (key, flat)
        return flat

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of rows of the trees' own features (`columns` already taken)."""
        return softmax(self.raw(X))

    def predict_features(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities of rows of all of `tree_features`' columns: the trees take theirs."""
        return self.predict_proba(rows if self.columns is None else rows[:, list(self.columns)])


def plain_sum(vectors: list[np.ndarray]) -> np.ndarray:
    return np.asarray(np.sum(vectors, axis=0))


@dataclass(slots=True)
class NoisedSums:
    """What leaves the clients, and all the coordinator sees: sums of their vectors, each client having added its
    share N(0, σ²/m) of the Gaussian noise so that the sum carries N(0, σ²). `aggregate` sums in the clear,
    through `FixedPointSum`, or through `PackedSum` (encrypted, the edge adding ciphertexts blind). Counts the
    releases and the floats each client sent — the protocol's cost."""

    aggregate: Callable[[list[np.ndarray]], np.ndarray]
    rng: np.random.Generator  # the noise's own generator: secret (OS entropy) unless a test seeds it
    releases: int = 0
    floats_per_client: int = 0

    def release(self, shares: list[np.ndarray], sigma: float) -> np.ndarray:
        shape = shares[0].shape
        if sigma:
            shares = [x + self.rng.normal(0.0, sigma / np.sqrt(len(shares)), shape) for x in shares]
        self.releases += 1
        self.floats_per_client += int(np.prod(shape))
        return np.asarray(self.aggregate([x.ravel() for x in shares])).reshape(shape)


@dataclass(slots=True)
class SummingTrainer:
    """What the federated trainers share: a seeded stream for their public draws, and the `NoisedSums` their
    releases go through, with a generator of its own for the noise (`config.noise_seed`, OS entropy by
    default). Subclasses are dataclasses that add a `config` (having `seed` and `noise_seed`)."""

    config: Any = field(init=False)  # each subclass declares its own, with its own type and default
    #: how the clients' vectors are summed (`NoisedSums.aggregate`); keyword-only, after the subclass's config
    aggregate: Callable[[list[np.ndarray]], np.ndarray] = field(default=plain_sum, kw_only=True)
    _rng: np.random.Generator = field(init=False)
    _sums: NoisedSums = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.config.seed)
        self._sums = NoisedSums(self.aggregate, np.random.default_rng(self.config.noise_seed))

    @property
    def releases(self) -> int:
        """Summed vectors the coordinator saw."""
        return self._sums.releases

    @property
    def floats_per_client(self) -> int:
        return self._sums.floats_per_client


@dataclass(slots=True)
class FederatedBoosting(SummingTrainer):
    config: TreeConfig = field(default_factory=TreeConfig)
    _n_bins: int = field(default=N_BINS, init=False)

    def private_edges(self, features: Sequence[np.ndarray], n_bins: int, *,
                      grid: np.ndarray | None = None) -> np.ndarray:
        """Bin edges from a sketch released like a histogram: each client's beat counts over `grid`
        (`grid_counts`), summed through this trainer's aggregate and noised with its multiplier (sensitivity
        √features: one count per feature); the edges are the noisy sum's quantiles (`edges_from_counts`).
        Set `config.private_edges` so that `dp_epsilon` accounts for it."""
        grid = sketch_grid() if grid is None else grid
        sigma = self.config.noise_multiplier * np.sqrt(features[0].shape[1])
        total = self._sums.release([grid_counts(X, grid) for X in features], sigma)
        return edges_from_counts(total, grid, n_bins)

    def fit(self, clients: Sequence[Client], edges: np.ndarray) -> BoostedModel:
        c = self.config
        self._n_bins = edges.shape[1] + 2  # bin 0 (missing), then one more bin than edges
        if self._n_bins > 256:
            raise ValueError(f"{edges.shape[1]} edges: at most 254 (bins are uint8)")
        for client in clients:
            client.start(c.n_classes)
        model = BoostedModel(edges, [], c.learning_rate, c.n_classes)
        for _ in range(c.rounds):
            grads = [[client.gradients(k) for k in range(c.n_classes)] for client in clients]
            if c.sample_rate < 1:  # beats not drawn this round add nothing to any of its histograms
                for per_class, client in zip(grads, clients, strict=True):
                    drawn = self._rng.random(len(client.y)) < c.sample_rate
                    for k, (g, h) in enumerate(per_class):
                        per_class[k] = (np.where(drawn, g, 0.0), np.where(drawn, h, 0.0))
            if c.noise_multiplier:  # each beat's contribution bounded before anything of it is released
                grads = [[(np.clip(g, -c.clip, c.clip), np.clip(h, 0, c.clip)) for g, h in per_class]
                         for per_class in grads]
            round_trees = []
            for k in range(c.n_classes):
                for client in clients:
                    client.node = np.zeros(len(client.y), dtype=np.int64)
                round_trees.append(grow_tree(c, partial(self._release, clients, [g[k] for g in grads])))
            for client in clients:  # every client applies the published trees to its own beats
                for k, tree in enumerate(round_trees):
                    client.raw[:, k] += c.learning_rate * tree.predict(client.bins)
            model.trees.append(round_trees)
        return model

    def _release(self, clients: Sequence[Client], grads: Sequence[tuple[np.ndarray, np.ndarray]], tree: Tree,
                 nodes: Sequence[int]) -> np.ndarray:
        """One release: every client's histograms of its beats in `nodes` of `tree` as grown so far, summed (and
        noised, with DP on). Each client moves its beats down the splits published since its last release."""
        c = self.config
        shares = []
        for cl, (g, h) in zip(clients, grads, strict=True):
            cl.node = tree.descend(cl.bins, cl.node)
            shares.append(client_histograms(cl.bins, position_in(cl.node, nodes), g, h, len(nodes), self._n_bins,
                                            counts=c.min_samples_leaf > 0))
        features = clients[0].bins.shape[1]
        return noised_floor(self._sums.release(shares, c.noise_multiplier * c.clip * np.sqrt(2 * features)), c)


#: the coordinator's one question to the clients while it grows a tree: the summed (and noised) histograms,
#: (channels, len(nodes), features, n_bins), of the beats that sit in each of `nodes` of the tree as grown so far
NodeRelease = Callable[[Tree, Sequence[int]], np.ndarray]


def position_in(node: np.ndarray, nodes: Sequence[int]) -> np.ndarray:
    """Each beat's index in `nodes` (−1: its node is not asked for) — the `node` argument of `client_histograms`."""
    lookup = np.full(int(max(node.max(initial=0), max(nodes, default=0))) + 1, -1, dtype=np.int64)
    lookup[np.asarray(nodes, dtype=np.int64)] = np.arange(len(nodes))
    return lookup[node]


def noised_floor(total: np.ndarray, config: TreeConfig) -> np.ndarray:
    """Post-processing of a noised release: a hessian sum is never negative."""
    total = np.asarray(total)
    if config.noise_multiplier:
        total[1] = np.maximum(total[1], 0.0)
    return total


def grow_tree(config: TreeConfig, release: NodeRelease) -> Tree:
    """One tree, grown by the coordinator from released sums alone — in process (`FederatedBoosting`) or over the
    bus (`cloud_expert.coordinator.trees`), the same decisions from the same sums."""
    if config.max_leaves is not None:
        return _grow_best_first(config, release)
    c = config
    tree = Tree()
    open_nodes = [tree.add()]
    for depth in range(c.max_depth + 1):
        total = release(tree, open_nodes)
        sums = total[:, :, 0, :].sum(axis=2)  # per node: G, H (any one feature's bins add up)
        splits = (best_splits(total, c.lam, c.min_hessian, c.min_samples_leaf)
                  if depth < c.max_depth else [None] * len(open_nodes))
        next_open: list[int] = []
        for i, (tree_node, split) in enumerate(zip(open_nodes, splits, strict=True)):
            if split is None:
                tree.value[tree_node] = _leaf_value(sums[0, i], sums[1, i], c.lam)
                continue
            next_open += tree.split(tree_node, split)
        open_nodes = next_open
        if not open_nodes:
            break
    return tree


def _grow_best_first(c: TreeConfig, release: NodeRelease) -> Tree:
    """Leaf-wise growth: split the open leaf that gains most, until `max_leaves`. Each split's release is the
    smaller child's histogram (fewer beats to bin on the devices, the same size on the wire); the other child's
    is the parent's minus it — exact for sums, and post-processing for noised ones."""
    assert c.max_leaves is not None
    tree = Tree()
    root = tree.add()
    histogram = {root: release(tree, [root])[:, 0]}
    depth = {root: 0}

    def candidate(node: int) -> Split | None:
        if depth[node] >= c.max_depth:
            return None
        return best_splits(histogram[node][:, None], c.lam, c.min_hessian, c.min_samples_leaf)[0]

    open_splits = {root: candidate(root)}
    leaves = 1
    while leaves < c.max_leaves:
        ready = {node: split for node, split in open_splits.items() if split is not None}
        if not ready:
            break
        node = max(ready, key=lambda n: ready[n].gain)
        split = ready[node]
        del open_splits[node]
        left, right = tree.split(node, split)  # public: each client routes its beats in that node
        parent = histogram.pop(node)
        left_size = parent[-1 if c.min_samples_leaf else 1, split.feature, : split.threshold_bin + 1].sum()
        right_size = parent[-1 if c.min_samples_leaf else 1, split.feature, split.threshold_bin + 1:].sum()
        small, large = (left, right) if left_size <= right_size else (right, left)
        histogram[small] = release(tree, [small])[:, 0]
        histogram[large] = parent - histogram[small]
        for child in (left, right):
            depth[child] = depth[node] + 1
            open_splits[child] = candidate(child)
        leaves += 1
    for node, hist in histogram.items():  # the leaves
        tree.value[node] = _leaf_value(hist[0, 0].sum(), hist[1, 0].sum(), c.lam)
    return tree


def _leaf_value(g: float, h: float, lam: float) -> float:
    """−G/(H + λ): the Newton step of a leaf (0 for a leaf with no hessian at all)."""
    return float(-g / (h + lam)) if h + lam > 0 else 0.0


def check_bound(vectors: list[np.ndarray], bound: float) -> None:
    """Refuse a client vector outside the packing range: clipping it would corrupt the sum without a word
    (e.g. a wearer with more beats in one bin than the bound was sized for)."""
    worst = max((float(np.max(np.abs(v))) for v in vectors if np.size(v)), default=0.0)
    if worst > bound:
        raise ValueError(f"a client's value {worst:.1f} exceeds the packing bound {bound:g}: size the bound for "
                         "the largest client")


@dataclass(slots=True)
class PackedSum:
    """The federation's arithmetic with the existing crypto (BatchCrypt: quantize, pack, Paillier), in process:
    each client encrypts its (noised) histogram vector with the public key, the edge adds ciphertexts without
    any key, the coordinator decrypts the sum — and refuses one of fewer than `min_clients`."""

    public_key: PaillierPublicKey
    private_key: PaillierPrivateKey  # the coordinator's alone
    clip: float  # |value| bound of one client's histogram entry (a public bound: clip × most beats per client)
    value_bits: int = 24
    min_clients: int = 2
    bytes_sent: int = 0  # every client's ciphertexts, all releases

    def __call__(self, vectors: list[np.ndarray]) -> np.ndarray:
        from shared.crypto.packing import packing_spec
        from shared.fl_codec import PackedPaillierCodec

        spec = packing_spec(self.public_key, clip=self.clip, max_clients=max(len(vectors), 2),
                            value_bits=self.value_bits)
        params = len(vectors[0])
        device = PackedPaillierCodec(self.public_key, spec, params=params)
        edge = PackedPaillierCodec(self.public_key, spec, params=params)
        cloud = PackedPaillierCodec(self.public_key, spec, params=params, private_key=self.private_key,
                                    min_clients=self.min_clients)
        check_bound(vectors, self.clip)
        total: bytes | None = None
        for vector in vectors:
            body = device.encode(np.clip(vector, -self.clip, self.clip))
            self.bytes_sent += len(body)
            total = edge.add(total, body)
        assert total is not None
        return cloud.decode_sum(total, len(vectors))


@dataclass(slots=True)
class FixedPointSum:
    """`PackedSum`'s arithmetic without the encryption: the same quantization (this key size's packing spec),
    integer sums, the same dequantization. Paillier adds the packed integers exactly, so this returns the very
    floats the coordinator decrypts (asserted release by release where a bench runs both) at a thousandth of
    the cost — for the repeated fits a study needs."""

    clip: float
    key_bits: int = 2048
    value_bits: int = 24
    min_clients: int = 2

    def __call__(self, vectors: list[np.ndarray]) -> np.ndarray:
        from shared.crypto.packing import PackingSpec, dequantize_sum, quantize

        if len(vectors) < self.min_clients:
            raise ValueError(f"a sum of {len(vectors)} clients is below the threshold {self.min_clients}")
        check_bound(vectors, self.clip)
        spec = PackingSpec(clip=self.clip, value_bits=self.value_bits, max_clients=max(len(vectors), 2),
                           plaintext_bits=self.key_bits - 1)
        levels = np.sum([quantize(np.clip(v, -self.clip, self.clip), spec) for v in vectors], axis=0)
        return dequantize_sum(levels, len(vectors), spec)


MODEL_KIND = "cardiomesh-boosted-trees-beat-model"
MODEL_VERSION = 1


def save_model(path: str | Path, model: BoostedModel, meta: dict[str, object] | None = None) -> None:
    """One `.npz` (no pickle): the bin edges, every tree's node arrays end to end with each tree's size, and
    `meta` as JSON (how it was trained, its privacy). `cardiomesh evaluate --model` reads it."""
    import json

    trees = [tree for round_trees in model.trees for tree in round_trees]
    nodes: dict[str, Any] = {name: np.concatenate([np.asarray(getattr(t, name)) for t in trees]) if trees
                             else np.zeros(0) for name in ("feature", "threshold_bin", "left", "right", "value")}
    np.savez(Path(path), kind=MODEL_KIND, version=MODEL_VERSION, edges=model.edges,
             learning_rate=model.learning_rate, n_classes=model.n_classes, rounds=len(model.trees),
             sizes=np.asarray([len(t.feature) for t in trees], dtype=np.int64), meta=json.dumps(meta or {}),
             columns=np.asarray(model.columns if model.columns is not None else [], dtype=np.int64), **nodes)


def load_model(path: str | Path, *, beat_model: bool = False) -> tuple[BoostedModel, dict[str, object]]:
    """(model, meta) from `save_model`'s file; `ModelFileError` with the reason for anything else. Every node is
    checked before any is walked: a child must come after its parent inside its own tree (so every walk ends at
    a leaf), a split must name a feature and a bin the edges have. `beat_model`: also require the 4 beat classes
    over `tree_features`' columns (what the product's readers feed it)."""
    import json

    from shared.model.serialize import ModelFileError, read_model_npz

    path = Path(path)
    data = read_model_npz(path, MODEL_KIND, MODEL_VERSION, "boosted-trees beat model")
    try:
        edges, sizes = data["edges"].astype(np.float64), data["sizes"].astype(np.int64).ravel()
        nodes = {name: data[name].astype(np.float64 if name == "value" else np.int64).ravel()
                 for name in ("feature", "threshold_bin", "left", "right", "value")}
        n_classes, rounds = int(data["n_classes"]), int(data["rounds"])
        learning_rate, meta = float(data["learning_rate"]), json.loads(str(data["meta"]))
        # files from before columns were saved read every column
        columns = tuple(int(c) for c in data["columns"].ravel()) if "columns" in data else ()
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable boosted-trees beat model ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: inconsistent trees model (meta is not an object)")
    if edges.ndim != 2 or not 1 <= edges.shape[1] <= 254 or not np.isfinite(learning_rate):
        raise ModelFileError(f"{path}: inconsistent trees model (edges {edges.shape})")
    if rounds < 1 or n_classes < 2 or len(sizes) != rounds * n_classes or (sizes < 1).any() \
            or any(len(values) != int(sizes.sum()) for values in nodes.values()):
        raise ModelFileError(f"{path}: {len(sizes)} trees of {int(sizes.sum())} nodes do not make {rounds} "
                             f"rounds of {n_classes} classes")
    if columns and (len(columns) != edges.shape[0] or len(set(columns)) != len(columns) or min(columns) < 0):
        raise ModelFileError(f"{path}: {len(columns)} column indices for {edges.shape[0]} features")
    if beat_model:
        from shared.model.tree_features import n_features

        if n_classes != 4 or (max(columns) >= n_features() if columns else edges.shape[0] != n_features()):
            raise ModelFileError(f"{path}: a model of {n_classes} classes over {edges.shape[0]} features, not the "
                                 f"4 beat classes over the {n_features()} beat features (or some of them)")
    trees: list[Tree] = []
    start = 0
    for size in sizes:
        part = {name: values[start:start + size] for name, values in nodes.items()}
        tree = checked_tree(part["feature"], part["threshold_bin"], part["left"], part["right"], part["value"],
                            features=edges.shape[0], n_bins=edges.shape[1] + 2)
        if tree is None:
            raise ModelFileError(f"{path}: a tree points outside itself, back at a node before it, or at a "
                                 "feature or bin its edges do not have")
        trees.append(tree)
        start += int(size)
    model = BoostedModel(edges, [trees[r * n_classes:(r + 1) * n_classes] for r in range(rounds)], learning_rate,
                         n_classes, columns or None)
    return model, meta


def checked_tree(feature: np.ndarray, threshold: np.ndarray, left: np.ndarray, right: np.ndarray,
                 value: np.ndarray, *, features: int, n_bins: int) -> Tree | None:
    """The tree these node arrays make, or None when one of its splits points outside the tree, back at a node
    before it (every walk must end at a leaf), or at a feature or bin the model does not have, or a value is not
    finite — what a model file and a published training state are both checked for before any walk."""
    feature, threshold = np.asarray(feature), np.asarray(threshold)
    left, right = np.asarray(left), np.asarray(right)
    index = np.arange(len(feature))
    inner = feature >= 0
    children_ok = ((left[inner] > index[inner]) & (left[inner] < len(feature))
                   & (right[inner] > index[inner]) & (right[inner] < len(feature))).all()
    splits_ok = ((feature[inner] < features) & (threshold[inner] >= 0) & (threshold[inner] < n_bins)).all()
    if not (children_ok and splits_ok and np.isfinite(value).all()):
        return None
    return Tree(feature.astype(np.int64).tolist(), threshold.astype(np.int64).tolist(),
                left.astype(np.int64).tolist(), right.astype(np.int64).tolist(), np.asarray(value).tolist())


def is_model_file(path: str | Path) -> bool:
    """Whether an `.npz` is `save_model`'s (rather than, say, the additive model's). Never raises."""
    from shared.model.serialize import is_npz_of_kind

    return is_npz_of_kind(path, MODEL_KIND)


def predict_beats(model: BoostedModel, beats: BeatSet) -> np.ndarray:
    """Class probabilities of one wearer's beats (features relative to this wearer: one recording at a time)."""
    from shared.model.tree_features import record_features

    return model.predict_features(record_features(beats))
