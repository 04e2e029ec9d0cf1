"""Federated additive beat model with sample-level DP (DP-EBM style): a shape function per feature and class,
learned by cyclic boosting in which every release is ONE feature's per-bin gradient sums.

Why this and not the trees for DP: a tree level releases every feature's gradient *and* hessian histograms for
every open node, so one beat touches 2 × features entries per level, and a round of trees is classes × levels
such releases — the noise that hides a beat grows with all of them. Here a release is one feature's (bins ×
classes) gradient sums: a beat adds its clipped gradient vector to one bin, so the L2 sensitivity is the clip
and nothing else. The per-bin weights (the denominators) depend only on the bins, not on the model, so they are
released once, with the class counts and the bin edges, from one noised count table on a public fine grid.
On DS1 halves an additive model of the record-relative features scores within about 0.02 VEB F1 of full trees
(sklearn, no interactions), so little accuracy is given up for a much cheaper privacy bill — on DS2 the gap
was larger (VEB +P 80 % against the trees' 87.5 %; docs/fl.md), and DP itself cost almost nothing there.

Protocol, per wearer (`GamClient`): (1) counts per (feature, fine bin, class) of its beats — summed over the
wearers with Gaussian noise, released once; the coordinator derives class weights, quantile bin edges and bin
weights from it (post-processing, no further cost); (2) for each epoch, for each feature in turn: the wearer's
clipped weighted softmax gradients summed per (bin, class), noised, summed — the coordinator updates that
feature's shape and publishes it; every wearer applies it to its own beats. Sums only ever: the packed-Paillier
path (`shared.fl.trees.PackedSum`) carries them exactly like the trees' histograms.

Nori, Caruana et al., "Accuracy, Interpretability, and Differential Privacy via Explainable Boosting", ICML 2021.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.fl.trees import SummingTrainer, softmax

if TYPE_CHECKING:
    from shared.model.data import BeatSet

FINE_BINS = 256  # public grid: bin 0 missing, 1 … 255 by edges evenly spaced in sign(x)·log(1 + |x|)
FINE_SPAN = 5.0


def fine_edges(span: float = FINE_SPAN, n_bins: int = FINE_BINS) -> np.ndarray:
    """The public, data-independent fine grid (n_bins − 2 edges) every feature is first binned on."""
    t = np.linspace(-span, span, n_bins - 2)
    return np.asarray(np.sign(t) * np.expm1(np.abs(t)))


def fine_bins(X: np.ndarray) -> np.ndarray:
    """(n, features) int16 fine bins: 0 for missing, 1 … FINE_BINS − 1."""
    edges = fine_edges()
    out = np.zeros(X.shape, dtype=np.int16)
    ok = np.isfinite(X)
    out[ok] = 1 + np.searchsorted(edges, X[ok], side="right")
    return out


def fine_counts(fine: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(features, FINE_BINS, classes) counts of one wearer's fine-binned beats: the first release of the additive
    model and of the forest (a beat adds 1 to one cell per feature)."""
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be 0 … {n_classes - 1}: got {y.min()} … {y.max()}")
    _n, features = fine.shape
    index = (np.arange(features)[None, :] * FINE_BINS + fine.astype(np.int64)) * n_classes + y[:, None]
    return np.bincount(index.ravel(), minlength=features * FINE_BINS * n_classes).reshape(
        features, FINE_BINS, n_classes).astype(np.float64)


@dataclass(frozen=True, slots=True)
class GamConfig:
    epochs: int = 10
    learning_rate: float = 0.5
    n_bins: int = 16  # coarse bins per feature (quantiles of the noised fine counts), the missing bin included
    n_classes: int = 4
    clip: float = 2.0  # L2 bound on one beat's weighted gradient vector
    weight_power: float = 0.5  # class weight = (N / (K · n_k)) ** power, capped at `weight_cap`
    weight_cap: float = 2.0
    min_weight: float = 10.0  # a bin's update divides by at least this (noised small bins stay calm)
    #: added to every bin's denominator in units of the gradient noise's std: shrinks the updates of bins whose
    #: sums are mostly noise (0 without DP, where that std is 0)
    shrink: float = 2.0
    #: Gaussian noise multiplier of each gradient release (std = multiplier × clip); 0: no DP
    noise_multiplier: float = 0.0
    #: of the one count release (std = multiplier × √features: a beat adds 1 to one cell per feature)
    count_noise_multiplier: float = 0.0
    seed: int = 0  # public draws (each epoch's term order); never the DP noise
    #: the DP noise's generator: None (the default) seeds it from OS entropy, as a released model needs — noise
    #: from a readable seed could be regenerated and subtracted. An int only for reproducible tests.
    noise_seed: int | None = None
    #: pairwise terms (GA2M): (feature, feature) index pairs, each a shape over the two features' joint coarse
    #: bins — an interaction the additive sum cannot express ("irregular AND unlike the usual beat"); each pair
    #: costs one more release per epoch at the same sensitivity, and its cell weights come from one more count
    #: release (a beat adds 1 to one cell per pair)
    pairs: tuple[tuple[int, int], ...] = ()


@dataclass(slots=True)
class GamClient:
    """One wearer's beats, fine-binned on the public grid, and their labels."""

    fine: np.ndarray
    y: np.ndarray
    bins: np.ndarray = field(init=False)
    weight: np.ndarray = field(init=False)
    raw: np.ndarray = field(init=False)

    def counts(self, n_classes: int) -> np.ndarray:
        """(features, FINE_BINS, classes) counts of this wearer's beats."""
        return fine_counts(self.fine, self.y, n_classes)

    def start(self, coarse: np.ndarray, class_weight: np.ndarray, n_classes: int) -> None:
        self.bins = np.take_along_axis(coarse.T, self.fine.astype(np.int64), axis=0)
        self.weight = class_weight[self.y]
        self.raw = np.zeros((len(self.y), n_classes))

    def term_bins(self, term: int, pairs: np.ndarray, n_bins: int) -> np.ndarray:
        """Each beat's cell in term `term`: a feature's coarse bin, or, past the features, a pair's joint cell."""
        return term_cells(self.bins, term, pairs, n_bins)

    def pair_counts(self, pairs: np.ndarray, n_bins: int, n_classes: int) -> np.ndarray:
        """(pairs, n_bins², classes) counts of this wearer's beats in each pair's joint cells."""
        features = self.bins.shape[1]
        out = np.zeros((len(pairs), n_bins * n_bins, n_classes))
        for p in range(len(pairs)):
            cells = self.term_bins(features + p, pairs, n_bins) * n_classes + self.y
            out[p] = np.bincount(cells, minlength=n_bins * n_bins * n_classes).reshape(-1, n_classes)
        return out

    def gradient_sums(self, cells: np.ndarray, size: int, clip: float) -> np.ndarray:
        """(size, classes) sums over `cells` of each beat's weighted softmax gradient, its L2 norm clipped to
        `clip`."""
        k = self.raw.shape[1]
        g = softmax(self.raw)
        g[np.arange(len(self.y)), self.y] -= 1.0
        g *= self.weight[:, None]
        norm = np.linalg.norm(g, axis=1, keepdims=True)
        g *= np.minimum(1.0, clip / np.maximum(norm, 1e-12))
        index = cells.astype(np.int64)[:, None] * k + np.arange(k)[None, :]
        return np.bincount(index.ravel(), weights=g.ravel(), minlength=size * k).reshape(size, k)


def term_cells(bins: np.ndarray, term: int, pairs: np.ndarray, n_bins: int) -> np.ndarray:
    """Cells of term `term` for coarse-binned beats: feature `term`, or pair `term − features` (a·n_bins + b)."""
    features = bins.shape[1]
    if term < features:
        return bins[:, term].astype(np.int64)
    a, b = pairs[term - features]
    return bins[:, a].astype(np.int64) * n_bins + bins[:, b].astype(np.int64)


@dataclass(slots=True)
class GamModel:
    """Per-feature fine-bin → coarse-bin maps and the shape (coarse bins × classes) of each feature."""

    coarse: np.ndarray  # (features, FINE_BINS) int
    shapes: np.ndarray  # (features, n_bins, classes)
    class_weight: np.ndarray
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))  # (pairs, 2)
    pair_shapes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 4)))  # (pairs, n_bins², classes)

    def raw(self, X: np.ndarray) -> np.ndarray:
        bins = np.take_along_axis(self.coarse.T, fine_bins(X).astype(np.int64), axis=0)
        features, n_bins, _k = self.shapes.shape
        out = np.zeros((len(X), self.shapes.shape[2]))
        for f in range(features):
            out += self.shapes[f][bins[:, f]]
        for p in range(len(self.pairs)):
            out += self.pair_shapes[p][term_cells(bins, features + p, self.pairs, n_bins)]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.raw(X))


def with_class_bias(model: GamModel, bias: np.ndarray) -> GamModel:
    """`model` with `bias` (one value per class) added to every beat's logits: folded into the first feature's
    shape — each beat falls in exactly one of its bins, the missing bin included — so the file format and every
    reader stay as they are. Post-processing of a released model: it costs no privacy."""
    shapes = model.shapes.copy()
    shapes[0] += np.asarray(bias, dtype=np.float64)[None, :]
    return GamModel(model.coarse, shapes, model.class_weight, model.pairs, model.pair_shapes)


def coarse_map(total: np.ndarray, n_bins: int) -> np.ndarray:
    """(features, FINE_BINS) coarse bin of every fine bin: the missing bin stays 0, the rest are cut where the
    (noised, made monotone) cumulative count crosses equal shares — quantile bins from a released histogram."""
    features = total.shape[0]
    out = np.zeros((features, FINE_BINS), dtype=np.int64)
    for f in range(features):
        cdf = np.maximum.accumulate(np.clip(np.cumsum(total[f, 1:]) / max(total[f, 1:].sum(), 1e-9), 0.0, 1.0))
        out[f, 1:] = 1 + np.minimum((cdf * (n_bins - 1)).astype(np.int64), n_bins - 2)
        out[f, 1:] = 1 + np.maximum.accumulate(out[f, 1:] - 1)
    return out


def accounted_epsilon(config: GamConfig, features: int, *, delta: float = 1e-5,
                      gradient_releases: int | None = None) -> float:
    """ε (RDP) of a training: the count release, then epochs × features gradient releases (or
    `gradient_releases` of them: a run that skipped some), each a Gaussian of its multiplier (every beat is in
    every release: no sampling)."""
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    if gradient_releases is None:
        gradient_releases = config.epochs * (features + len(config.pairs))
    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(config.count_noise_multiplier))
    if config.pairs:  # the pairs' count table: one more release of the same multiplier
        accountant.compose(dp_accounting.GaussianDpEvent(config.count_noise_multiplier))
    accountant.compose(dp_accounting.GaussianDpEvent(config.noise_multiplier), gradient_releases)
    return float(accountant.get_epsilon(delta))


def calibrate(config: GamConfig, features: int, epsilon: float, *, delta: float = 1e-5,
              count_share: float = 1.0) -> GamConfig:
    """`config` with the smallest noise multipliers that keep its training within (ε, δ): the count release
    gets `count_share` × the gradient releases' combined multiplier (z / √(epochs · features))."""
    from dataclasses import replace

    releases = config.epochs * (features + len(config.pairs))

    def at(z: float) -> GamConfig:
        return replace(config, noise_multiplier=z, count_noise_multiplier=count_share * z / np.sqrt(releases))

    from shared.fl.accounting import smallest_multiplier

    return at(smallest_multiplier(lambda z: accounted_epsilon(at(z), features, delta=delta), epsilon, low=0.01,
                                  high=1e4, steps=60))


@dataclass(frozen=True, slots=True)
class GamPublic:
    """What the coordinator derives from the one noised count table (post-processing, no further privacy cost):
    the class weights, each feature's fine → coarse map, and each coarse bin's weight (the updates' denominators)."""

    class_weight: np.ndarray  # (classes,)
    coarse: np.ndarray  # (features, FINE_BINS) int
    bin_weight: np.ndarray  # (features, n_bins)


def from_counts(counts: np.ndarray, config: GamConfig) -> GamPublic:
    """`counts`: the released (features, FINE_BINS, classes) sum of every wearer's noised count table."""
    c = config
    features = counts.shape[0]
    # sums of noised cells stay unbiased; clipping each cell at 0 first would add ≈ 0.4 σ per empty cell and
    # inflate the small classes' totals by hundreds of beats
    class_n = counts.sum(axis=1).mean(axis=0)  # every feature's bins add up to the class totals
    class_weight = np.minimum((class_n.sum() / (c.n_classes * np.maximum(class_n, 1.0))) ** c.weight_power,
                              c.weight_cap)
    coarse = coarse_map(counts.sum(axis=2), c.n_bins)
    bin_weight = np.zeros((features, c.n_bins))
    for f in range(features):
        np.add.at(bin_weight[f], coarse[f], counts[f] @ class_weight)
    return GamPublic(class_weight, coarse, bin_weight)


def term_step(total: np.ndarray, weight: np.ndarray, config: GamConfig) -> np.ndarray:
    """The change to one term's shape from the released (cells, classes) gradient sums: a Newton-like step whose
    denominator is the cells' public weight, floored, plus `shrink` noise standard deviations (so cells whose
    sums are mostly noise move little)."""
    c = config
    floor = c.shrink * c.noise_multiplier * c.clip
    return np.asarray(-c.learning_rate * total / (np.maximum(weight, c.min_weight) + floor)[:, None])


def term_orders(config: GamConfig, terms: int) -> list[np.ndarray]:
    """Each epoch's public order of the terms (seeded by `config.seed`): the one schedule every fit follows,
    in process or over the bus."""
    rng = np.random.default_rng(config.seed)
    return [rng.permutation(terms) for _ in range(config.epochs)]


@dataclass(slots=True)
class FederatedGam(SummingTrainer):
    config: GamConfig = field(default_factory=GamConfig)

    def fit(self, clients: Sequence[GamClient]) -> GamModel:
        c = self.config
        features = clients[0].fine.shape[1]
        counts = self._sums.release([cl.counts(c.n_classes) for cl in clients],
                                    c.count_noise_multiplier * np.sqrt(features))
        public = from_counts(counts, c)
        for client in clients:
            client.start(public.coarse, public.class_weight, c.n_classes)
        pairs = np.asarray(c.pairs, dtype=np.int64).reshape(-1, 2)
        cells = c.n_bins * c.n_bins
        # every term's shape and its cells' weights: the features' from the first count table, the pairs' from
        # a second one (it needs the coarse bins the first one gave)
        shapes = [np.zeros((c.n_bins, c.n_classes)) for _ in range(features)]
        weights = list(public.bin_weight)
        if len(pairs):
            pair_counts = self._sums.release([cl.pair_counts(pairs, c.n_bins, c.n_classes) for cl in clients],
                                             c.count_noise_multiplier * np.sqrt(len(pairs)))
            shapes += [np.zeros((cells, c.n_classes)) for _ in range(len(pairs))]
            weights += list(pair_counts @ public.class_weight)
        for order in term_orders(c, len(shapes)):  # a fresh public order each epoch (seeded)
            for term in order:
                size = len(shapes[term])
                client_cells = [cl.term_bins(term, pairs, c.n_bins) for cl in clients]
                shares = [cl.gradient_sums(x, size, c.clip) for cl, x in zip(clients, client_cells, strict=True)]
                total = self._sums.release(shares, c.noise_multiplier * c.clip)
                update = term_step(total, weights[term], c)
                shapes[term] += update
                for client, x in zip(clients, client_cells, strict=True):  # public: each applies it to its own
                    client.raw += update[x]
        pair_shapes = np.stack(shapes[features:]) if len(pairs) else np.zeros((0, cells, c.n_classes))
        return GamModel(coarse=public.coarse, shapes=np.stack(shapes[:features]), class_weight=public.class_weight,
                        pairs=pairs, pair_shapes=pair_shapes)


#: the public state as one float32 vector (what the bus's signed model carries): a header, the class weights,
#: the fine → coarse maps (small integers: exact in float32), the shapes. Pairwise terms are not carried.
STATE_TAG = 7.0


def state_vector(coarse: np.ndarray, class_weight: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    features, n_bins, classes = shapes.shape
    header = np.array([STATE_TAG, features, n_bins, classes], dtype=np.float64)
    return np.concatenate([header, class_weight, coarse.ravel(), shapes.ravel()]).astype(np.float32)


def empty_state(features: int, config: GamConfig) -> np.ndarray:
    """Version 0: no bins chosen yet (every fine bin in coarse bin 0), unit class weights, flat shapes."""
    return state_vector(np.zeros((features, FINE_BINS), dtype=np.int64), np.ones(config.n_classes),
                        np.zeros((features, config.n_bins, config.n_classes)))


def parse_state(vector: np.ndarray) -> GamModel:
    """`state_vector`'s inverse; ValueError for a vector that is not one."""
    v = np.asarray(vector, dtype=np.float64).ravel()
    if v.size < 4 or v[0] != STATE_TAG:
        raise ValueError("not an additive model state")
    if not np.all(np.isfinite(v)):
        raise ValueError("additive model state with non-finite values")
    if not np.array_equal(v[1:4], np.round(v[1:4])) or v[1:4].max() > 1e6:
        raise ValueError(f"additive model state: header {v[1:4].tolist()} is not three counts")
    features, n_bins, classes = (int(x) for x in v[1:4])
    sizes = (classes, features * FINE_BINS, features * n_bins * classes)
    if min(features, n_bins, classes) < 1 or v.size != 4 + sum(sizes):
        raise ValueError(f"additive model state of {v.size} values does not match its header "
                         f"({features} features, {n_bins} bins, {classes} classes)")
    class_weight, coarse, shapes = np.split(v[4:], np.cumsum(sizes)[:2])
    coarse_int = coarse.astype(np.int64)
    if not np.array_equal(coarse_int, coarse) or coarse_int.min() < 0 or coarse_int.max() >= n_bins:
        raise ValueError("additive model state: coarse bins out of range")
    return GamModel(coarse_int.reshape(features, FINE_BINS), shapes.reshape(features, n_bins, classes),
                    class_weight)


#: what `save`/`load` write and check: a model file says which model it is, not only what arrays it holds
FILE_KIND = "cardiomesh-additive-beat-model"
FILE_VERSION = 1


def save(path: str | Path, model: GamModel, columns: int, meta: dict[str, object] | None = None) -> None:
    """One `.npz` (no pickle): the fine→coarse maps, the shapes, the class weights, how many of the
    `tree_features` columns it reads, and `meta` as JSON (how it was trained, its privacy)."""
    import json

    np.savez(Path(path), kind=FILE_KIND, version=FILE_VERSION, coarse=model.coarse, shapes=model.shapes,
             class_weight=model.class_weight, columns=columns, meta=json.dumps(meta or {}),
             pairs=np.asarray(model.pairs, dtype=np.int64).reshape(-1, 2), pair_shapes=model.pair_shapes)


def load(path: str | Path) -> tuple[GamModel, int, dict[str, object]]:
    """(model, columns, meta) from `save`'s file; `ModelFileError` with the reason for anything else."""
    import json

    from shared.model.serialize import ModelFileError, read_model_npz
    from shared.model.tree_features import n_features

    path = Path(path)
    data = read_model_npz(path, FILE_KIND, FILE_VERSION, "additive beat model")
    try:
        coarse, shapes = data["coarse"].astype(np.int64), data["shapes"].astype(np.float64)
        class_weight, columns = data["class_weight"], int(data["columns"])
        meta = json.loads(str(data["meta"]))
        if "pairs" in data:
            pairs = data["pairs"].astype(np.int64).reshape(-1, 2)
            pair_shapes = data["pair_shapes"].astype(np.float64)
        else:  # written before pairwise terms existed
            pairs, pair_shapes = np.zeros((0, 2), dtype=np.int64), np.zeros((0, 0, shapes.shape[2]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: not a readable additive beat model ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: inconsistent additive model (meta is not an object)")
    consistent = (shapes.ndim == 3 and shapes.shape[0] == columns and shapes.shape[2] == 4
                  and 0 < columns <= n_features() and coarse.shape == (columns, FINE_BINS)
                  and coarse.min() >= 0 and coarse.max() < shapes.shape[1] and bool(np.isfinite(shapes).all()))
    if consistent and len(pairs):
        consistent = (pairs.min() >= 0 and pairs.max() < columns and bool(np.isfinite(pair_shapes).all())
                      and pair_shapes.shape == (len(pairs), shapes.shape[1] ** 2, shapes.shape[2]))
    if not consistent:
        raise ModelFileError(f"{path}: inconsistent additive model (shapes {shapes.shape}, columns {columns}, "
                             f"pairs {pairs.shape})")
    return GamModel(coarse, shapes, class_weight, pairs, pair_shapes), columns, meta


def predict_beats(model: GamModel, columns: int, beats: BeatSet) -> np.ndarray:
    """Class probabilities of one wearer's beats (features are relative to this wearer: one recording at a
    time, never a pooled set of people)."""
    from shared.model.tree_features import as_distances, record_features

    return model.predict_proba(as_distances(record_features(beats))[:, :columns])
