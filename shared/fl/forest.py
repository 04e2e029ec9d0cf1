"""Federated random-structure forest with sample-level DP: the cheapest private beat model that still sees
interactions.

Each tree's structure is public and drawn before any data is seen: at every node a random feature and a random
cut among that feature's coarse bins, within the range the path above it leaves (a path never cuts a feature
twice at the same place, so no branch is empty by construction). The data enter through two releases only:

1. every wearer's beat counts per (feature, fine bin, class) on the public fine grid (`gam.fine_counts`: a beat
   adds 1 to one cell per feature, L2 sensitivity √features) — from their noised sum the coordinator derives the
   class weights and each feature's quantile bins, weighted by class so the rare V beats get resolution;
2. every wearer's beat counts per (tree, leaf, class) — a beat adds 1 to one leaf per tree, L2 sensitivity
   √trees — whose noised sum becomes each leaf's class distribution.

A prediction averages the trees' leaf distributions, so the √trees of the sensitivity is won back by the
averaging: per beat the forest costs what one tree would. Against the additive model (661 releases) and the
boosted trees (dozens), the whole bill is two Gaussians. How it is split is `calibrate`'s `count_share` (0.3:
the count release's multiplier is 0.3 × the leaves'), fixed from a pilot, not searched: at ε = 8 that spends
most of the RDP budget on the counts, and leaves the leaf counts a noise of ≈ 27 beats each (docs/fl.md).

Jagannathan, Pillaipakkamnatt & Wright, "A practical differentially private random decision tree classifier",
ICDM Workshops 2009; Fletcher & Islam, "Decision tree classification with differential privacy: a survey", 2019.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.fl.gam import FINE_BINS, coarse_map, fine_bins, fine_counts
from shared.fl.trees import SummingTrainer

if TYPE_CHECKING:
    from shared.model.data import BeatSet

FILE_KIND = "cardiomesh-forest-beat-model"
FILE_VERSION = 1
#: added to every leaf's class-weighted count before it is normalised: an empty (or noised-empty) leaf votes
#: evenly instead of not at all
LEAF_PRIOR = 0.5
PREDICT_CHUNK = 2048  # beats walked through all trees at once (≈ 10 MB of leaf votes at 150 trees)
#: the largest release a round may announce (`RoundPayload.params`): a forest's leaves must fit in one
MAX_RELEASE = 10_000_000


@dataclass(frozen=True, slots=True)
class ForestConfig:
    trees: int = 150
    depth: int = 8
    n_bins: int = 16  # coarse bins per feature (the missing bin included)
    n_classes: int = 4
    weight_power: float = 0.5  # class weight = (N / (K · n_k)) ** power, from the released counts
    #: Gaussian multiplier of the leaf release (std = multiplier × √trees); 0: no DP
    noise_multiplier: float = 0.0
    #: of the count release (std = multiplier × √features)
    count_noise_multiplier: float = 0.0
    seed: int = 0  # the public structure
    #: the DP noise's generator: None (the default) seeds it from OS entropy, as a released model needs
    noise_seed: int | None = None

    @property
    def leaves(self) -> int:
        return 2 ** self.depth


def random_tree(rng: np.random.Generator, features: int, n_bins: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """One complete tree's (feature, cut) per internal node (heap order): a beat goes right when its coarse bin
    is ≥ the cut. A node whose path left no feature with two bins sends every beat left (cut = `n_bins`)."""
    internal = 2 ** depth - 1
    feature = np.zeros(internal, np.int64)
    cut = np.full(internal, n_bins, np.int64)
    low = np.zeros((internal, features), np.int64)
    high = np.full((internal, features), n_bins, np.int64)  # the path leaves bins low … high − 1 reachable
    for node in range(internal):
        open_features = np.flatnonzero(high[node] - low[node] > 1)
        if len(open_features):
            f = int(rng.choice(open_features))
            feature[node], cut[node] = f, rng.integers(low[node, f] + 1, high[node, f])
        for child, right in ((2 * node + 1, False), (2 * node + 2, True)):
            if child < internal:
                low[child], high[child] = low[node], high[node]
                if cut[node] < n_bins:
                    (low if right else high)[child, feature[node]] = cut[node]
    return feature, cut


def structure(config: ForestConfig, features: int) -> tuple[np.ndarray, np.ndarray]:
    """Every tree's (feature, cut), (trees, 2^depth − 1) each, from `config.seed` alone: public."""
    rng = np.random.default_rng(config.seed)
    drawn = [random_tree(rng, features, config.n_bins, config.depth) for _ in range(config.trees)]
    return np.stack([f for f, _ in drawn]), np.stack([c for _, c in drawn])


def leaf_of(bins: np.ndarray, feature: np.ndarray, cut: np.ndarray, depth: int) -> np.ndarray:
    """Each beat's leaf (0 … 2^depth − 1) in one tree; `bins` (n, features) coarse bins."""
    node = np.zeros(len(bins), np.int64)
    rows = np.arange(len(bins))
    for _ in range(depth):
        node = 2 * node + 1 + (bins[rows, feature[node]] >= cut[node])
    return node - (2 ** depth - 1)


def to_coarse(coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """(n, features) coarse bins of fine-binned beats through the (features, FINE_BINS) map."""
    return np.take_along_axis(coarse.T, fine.astype(np.int64), axis=0)


def leaf_counts(bins: np.ndarray, y: np.ndarray, feature: np.ndarray, cut: np.ndarray, config: ForestConfig
                ) -> np.ndarray:
    """(trees, leaves, classes) counts of one wearer's beats: what it releases in the second round."""
    if len(y) and (y.min() < 0 or y.max() >= config.n_classes):
        raise ValueError(f"labels must be 0 … {config.n_classes - 1}: got {y.min()} … {y.max()}")
    out = np.zeros((config.trees, config.leaves, config.n_classes))
    for t in range(config.trees):
        cells = leaf_of(bins, feature[t], cut[t], config.depth) * config.n_classes + y
        out[t] = np.bincount(cells, minlength=config.leaves * config.n_classes).reshape(config.leaves, -1)
    return out


@dataclass(frozen=True, slots=True)
class ForestPublic:
    """What the coordinator derives from the first release (post-processing, no further privacy cost)."""

    class_weight: np.ndarray  # (classes,)
    coarse: np.ndarray  # (features, FINE_BINS) int


def public_from_counts(counts: np.ndarray, config: ForestConfig) -> ForestPublic:
    """`counts`: the released (features, FINE_BINS, classes) noised sum. The bins are quantiles of the
    class-weighted counts: by beat count alone, V's 7 % of the beats would share one or two bins."""
    class_n = counts.sum(axis=1).mean(axis=0)  # every feature's bins add up to the class totals
    class_weight = (class_n.sum() / (config.n_classes * np.maximum(class_n, 1.0))) ** config.weight_power
    return ForestPublic(class_weight, coarse_map(counts @ class_weight, config.n_bins))


def leaf_distributions(total: np.ndarray, class_weight: np.ndarray) -> np.ndarray:
    """(trees, leaves, classes) class distribution of each leaf from the released noised counts."""
    weighted = np.maximum(total, 0.0) * class_weight + LEAF_PRIOR
    return np.asarray(weighted / weighted.sum(axis=2, keepdims=True), dtype=np.float32)


@dataclass(frozen=True, slots=True)
class ForestModel:
    coarse: np.ndarray  # (features, FINE_BINS) fine → coarse bin
    feature: np.ndarray  # (trees, 2^depth − 1)
    cut: np.ndarray  # (trees, 2^depth − 1)
    leaf_proba: np.ndarray  # (trees, 2^depth, classes)
    class_weight: np.ndarray  # (classes,)
    bias: np.ndarray  # (classes,) added to the log of the averaged votes (the operating point; 0 by default)
    n_bins: int  # coarse bins per feature; a cut of `n_bins` sends every beat left

    @property
    def depth(self) -> int:
        return int(np.log2(self.leaf_proba.shape[1]))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) log of the trees' averaged leaf distributions plus `bias`; `X` (n, features) values. All
        trees walk at once, a chunk of beats at a time: one beat on the watch is one pass, not 150."""
        bins = to_coarse(self.coarse, fine_bins(X))
        trees = np.arange(len(self.feature))[:, None]
        out = np.zeros((len(X), self.leaf_proba.shape[2]))
        for start in range(0, len(X), PREDICT_CHUNK):
            chunk = bins[start:start + PREDICT_CHUNK]
            rows = np.arange(len(chunk))[None, :]
            node = np.zeros((len(self.feature), len(chunk)), np.int64)
            for _ in range(self.depth):
                node = 2 * node + 1 + (chunk[rows, self.feature[trees, node]] >= self.cut[trees, node])
            leaves = self.leaf_proba[trees, node - (self.leaf_proba.shape[1] - 1)]  # (trees, chunk, classes)
            out[start:start + PREDICT_CHUNK] = leaves.mean(axis=0, dtype=np.float64)
        return np.asarray(np.log(out) + self.bias)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, classes) class probabilities (the softmax of `raw`: the averaged votes, moved by `bias`)."""
        from shared.fl.trees import softmax

        return softmax(self.raw(X))


def with_class_bias(model: ForestModel, bias: np.ndarray) -> ForestModel:
    """`model` with `bias` added to its logits: the operating point. Adding it costs no privacy; *choosing* it on
    the wearers' own beats (as `bench/_dp_forest.py` does on DS1) is a use of the data the budget does not charge
    (docs/privacy.md)."""
    return replace(model, bias=model.bias + np.asarray(bias, dtype=np.float64))


@dataclass(slots=True)
class FederatedForest(SummingTrainer):
    config: ForestConfig = field(default_factory=ForestConfig)

    def fit(self, clients: Sequence[tuple[np.ndarray, np.ndarray]]) -> ForestModel:
        """`clients`: each wearer's (fine bins (n, features), labels (n,)). Two releases; see the module."""
        c = self.config
        features = clients[0][0].shape[1]
        counts = self._sums.release([fine_counts(fine, y, c.n_classes) for fine, y in clients],
                                    c.count_noise_multiplier * np.sqrt(features))
        public = public_from_counts(counts, c)
        feature, cut = structure(c, features)
        total = self._sums.release([leaf_counts(to_coarse(public.coarse, fine), y, feature, cut, c)
                                    for fine, y in clients], c.noise_multiplier * np.sqrt(c.trees))
        return ForestModel(public.coarse, feature, cut, leaf_distributions(total, public.class_weight),
                           public.class_weight, np.zeros(c.n_classes), c.n_bins)


def accounted_epsilon(config: ForestConfig, *, delta: float = 1e-5) -> float:
    """ε (RDP) of a training: two Gaussian releases, every beat in both (no sampling)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(config.count_noise_multiplier))
    accountant.compose(dp_accounting.GaussianDpEvent(config.noise_multiplier))
    return float(accountant.get_epsilon(delta))


def calibrate(config: ForestConfig, epsilon: float, *, delta: float = 1e-5, count_share: float = 0.3
              ) -> ForestConfig:
    """`config` with the smallest noise multipliers that keep its training within (ε, δ); the count release's
    multiplier is `count_share` × the leaf release's."""
    from shared.fl.accounting import smallest_multiplier

    def at(z: float) -> ForestConfig:
        return replace(config, noise_multiplier=z, count_noise_multiplier=count_share * z)

    config = at(smallest_multiplier(lambda z: accounted_epsilon(at(z), delta=delta), epsilon, low=0.01, high=1e3,
                                    steps=60))
    if accounted_epsilon(config, delta=delta) > epsilon * 1.001:
        raise ValueError(f"ε = {epsilon} cannot be reached with noise multipliers up to 1000")
    return config


def save(path: str | Path, model: ForestModel, columns: Sequence[int], meta: dict[str, object] | None = None
         ) -> None:
    """One `.npz` (no pickle): the bins, the trees, the leaves, which `tree_features` columns it reads, and `meta`
    as JSON (how it was trained, its privacy)."""
    import json

    np.savez(Path(path), kind=FILE_KIND, version=FILE_VERSION, coarse=model.coarse.astype(np.int16),
             feature=model.feature.astype(np.int16), cut=model.cut.astype(np.int16), leaf_proba=model.leaf_proba,
             class_weight=model.class_weight, bias=model.bias, columns=np.asarray(columns, dtype=np.int64),
             n_bins=model.n_bins,
             meta=json.dumps(meta or {}))


def is_model_file(path: str | Path) -> bool:
    """Whether an `.npz` is `save`'s. Never raises."""
    from shared.model.serialize import is_npz_of_kind

    return is_npz_of_kind(path, FILE_KIND)


def load(path: str | Path) -> tuple[ForestModel, np.ndarray, dict[str, object]]:
    """(model, columns, meta) from `save`'s file; `ModelFileError` with the reason for anything else."""
    import json

    from shared.model.serialize import ModelFileError, read_model_npz
    from shared.model.tree_features import n_features

    path = Path(path)
    data = read_model_npz(path, FILE_KIND, FILE_VERSION, "forest beat model")
    try:
        model = ForestModel(coarse=data["coarse"].astype(np.int64), feature=data["feature"].astype(np.int64),
                            cut=data["cut"].astype(np.int64), leaf_proba=data["leaf_proba"].astype(np.float32),
                            class_weight=data["class_weight"].astype(np.float64),
                            bias=data["bias"].astype(np.float64), n_bins=int(data["n_bins"]))
        columns = data["columns"].astype(np.int64)
        meta = json.loads(str(data["meta"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable forest beat model ({exc})") from None
    trees, leaves, classes = model.leaf_proba.shape if model.leaf_proba.ndim == 3 else (0, 0, 0)
    n_bins = model.n_bins
    consistent = (isinstance(meta, dict) and trees > 0 and classes == 4 and leaves >= 2
                  and leaves & (leaves - 1) == 0 and columns.ndim == 1 and len(columns) > 0
                  and columns.min() >= 0 and columns.max() < n_features()
                  and model.coarse.shape == (len(columns), FINE_BINS) and model.coarse.min() >= 0
                  and model.coarse.max() < n_bins
                  and model.feature.shape == model.cut.shape == (trees, leaves - 1)
                  and model.feature.min() >= 0 and model.feature.max() < len(columns)
                  and model.cut.min() >= 1 and model.cut.max() <= n_bins
                  and model.class_weight.shape == model.bias.shape == (classes,)
                  and bool(np.isfinite(model.leaf_proba).all() and np.isfinite(model.bias).all())
                  and _distributions(model.leaf_proba))
    if not consistent:
        raise ModelFileError(f"{path}: inconsistent forest beat model (leaves {model.leaf_proba.shape}, "
                             f"nodes {model.feature.shape}, columns {columns.shape})")
    return model, columns, meta


def predict_features(model: ForestModel, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Class probabilities of `tree_features.record_features` rows (one wearer's)."""
    from shared.model.tree_features import as_distances

    return model.predict_proba(as_distances(rows)[:, columns])


def predict_beats(model: ForestModel, columns: np.ndarray, beats: BeatSet) -> np.ndarray:
    """Class probabilities of one wearer's beats (features relative to this wearer: one recording at a time)."""
    from shared.model.tree_features import record_features

    return predict_features(model, columns, record_features(beats))


#: the public state over the bus, one float32 vector (the signed global model): a header, then the structure (drawn
#: before any data: it travels from the first version on), the class weights and fine → coarse maps (after the count
#: release), the leaf distributions (after the leaf release). Small integers are exact in float32, and the length is
#: fixed by the header, so every version is a lossless delta of the last.
STATE_TAG = 11.0
HEADER = 8  # tag, features, trees, depth, bins, classes, stage, spare
LIMITS = {"features": 1_000, "trees": 2_000, "depth": 12, "bins": 255}  # what a published state may claim


@dataclass(slots=True)
class ForestState:
    """The training as the coordinator publishes it and every watch holds it. `stage`: 0 the structure only,
    1 the bins and class weights too, 2 the leaves too (a model)."""

    config: ForestConfig  # trees, depth, n_bins, n_classes (the noise is the round's, not the state's)
    features: int
    feature: np.ndarray  # (trees, 2^depth − 1)
    cut: np.ndarray
    class_weight: np.ndarray  # (classes,)
    coarse: np.ndarray  # (features, FINE_BINS)
    leaf_proba: np.ndarray  # (trees, leaves, classes)
    stage: int = 0

    @classmethod
    def empty(cls, config: ForestConfig, features: int) -> ForestState:
        """Stage 0: the public structure from `config.seed`, nothing learned."""
        feature, cut = structure(config, features)
        return cls(config, features, feature, cut, np.zeros(config.n_classes),
                   np.zeros((features, FINE_BINS), np.int64), np.zeros((config.trees, config.leaves,
                                                                         config.n_classes)))

    def vector(self) -> np.ndarray:
        """The float32 vector the coordinator signs and publishes (`parse` reads it back)."""
        c = self.config
        header = [STATE_TAG, self.features, c.trees, c.depth, c.n_bins, c.n_classes, self.stage, 0.0]
        return np.concatenate([np.asarray(header, dtype=np.float64), self.feature.ravel(), self.cut.ravel(),
                               self.class_weight, self.coarse.ravel(), self.leaf_proba.ravel()]).astype(np.float32)

    @classmethod
    def parse(cls, vector: np.ndarray) -> ForestState:
        """The state in a published vector; `ValueError` with the reason for anything that is not one. The
        header is read and the length checked first, so a hostile header costs a watch nothing."""
        raw = np.asarray(vector).ravel()
        if len(raw) < HEADER or float(raw[0]) != STATE_TAG:
            raise ValueError("not a forest state (tag)")
        head = raw[1:HEADER].astype(np.float64)
        if not _integral(head):
            raise ValueError("forest state header is not integers")
        features, trees, depth, n_bins, classes, stage, _spare = (int(x) for x in head)
        limits = {"features": features, "trees": trees, "depth": depth, "bins": n_bins}
        if any(not 1 <= value <= LIMITS[name] for name, value in limits.items()) or n_bins < 2 or classes != 4 \
                or stage not in (0, 1, 2) or trees * 2 ** depth * classes > MAX_RELEASE:
            raise ValueError(f"forest state header out of range ({limits}, classes {classes}, stage {stage})")
        config = ForestConfig(trees=trees, depth=depth, n_bins=n_bins, n_classes=classes)
        internal, leaves = 2 ** depth - 1, 2 ** depth
        sizes = (trees * internal, trees * internal, classes, features * FINE_BINS, trees * leaves * classes)
        if len(raw) != HEADER + sum(sizes):
            raise ValueError(f"forest state of {len(raw)} values, its header says {HEADER + sum(sizes)}")
        v = raw.astype(np.float64)
        if not np.all(np.isfinite(v[HEADER:])):
            raise ValueError("forest state with non-finite values")
        parts = np.split(v[HEADER:], np.cumsum(sizes)[:-1])
        if not all(_integral(parts[i]) for i in (0, 1, 3)):
            raise ValueError("forest state with a node or bin that is not an integer")
        feature, cut, coarse = (parts[i].astype(np.int64) for i in (0, 1, 3))
        if (feature.min() < 0 or feature.max() >= features or cut.min() < 1 or cut.max() > n_bins
                or coarse.min() < 0 or coarse.max() >= n_bins):
            raise ValueError("forest state with a node or bin out of range")
        class_weight, leaf_proba = parts[2], parts[4].reshape(trees, leaves, classes)
        if stage >= 1 and not np.all(class_weight > 0):
            raise ValueError("forest state with a class weight that is not positive")
        if not (_distributions(leaf_proba) if stage == 2 else not np.any(leaf_proba)):
            raise ValueError("forest state whose leaves are not class distributions (or not yet empty)")
        return cls(config, features, feature.reshape(trees, internal), cut.reshape(trees, internal), class_weight,
                   coarse.reshape(features, FINE_BINS), leaf_proba, stage)

    def model(self) -> ForestModel:
        """The published model (stage 2 only)."""
        if self.stage != 2:
            raise ValueError(f"the forest is not trained yet (stage {self.stage})")
        return ForestModel(self.coarse, self.feature, self.cut, self.leaf_proba.astype(np.float32),
                           self.class_weight, np.zeros(self.config.n_classes), self.config.n_bins)


def _integral(values: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _distributions(leaf_proba: np.ndarray) -> bool:
    """Every leaf a class distribution (non-negative, summing to 1 within float32): anything else would make
    `raw` take the log of a negative vote, and every beat read as class 0."""
    return bool(np.all(leaf_proba >= 0) and np.allclose(leaf_proba.sum(axis=-1), 1.0, atol=1e-4))
