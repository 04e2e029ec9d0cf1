"""The coordinator's side of the DP forest over the bus (`shared.fl.forest`, ADR 0021).

`FederatedForest.fit`'s two releases as release rounds of the real protocol. The structure is public and in the
state from its first version. The count release's noised sum gives the class weights and each feature's bins,
published, signed, as the next version; every watch then counts its beats per (tree, leaf, class) against exactly
those bins, the edges sum the ciphertexts blind, and the coordinator decrypts only a sum of ≥ k watches and
publishes the leaves. Without either sum there is no model: a release below k ends the run (`ForestRunError`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundRecord
from cloud_expert.coordinator.releases import gaussian_dp, labelled_release
from shared.fl import forest
from shared.fl.gam import FINE_BINS
from shared.fl.model_delta import LOSSLESS
from shared.messages import ReleaseRequest, RoundPayload


class ForestRunError(RuntimeError):
    """The run cannot go on (a release was not answered by k watches, or could not be decrypted)."""


@dataclass
class ForestResult:
    state: forest.ForestState  # as the watches hold it: parsed from the last published vector (float32)
    records: list[RoundRecord] = field(default_factory=list)

    @property
    def model(self) -> forest.ForestModel:
        return self.state.model()


def run_forest(coordinator: Coordinator, config: forest.ForestConfig, *, bound: float, delta: float = 1e-5,
               progress: Callable[[RoundRecord, str], None] | None = None, timeout_s: float = 900.0,
               prepare: Callable[[RoundPayload], float] | None = None) -> ForestResult:
    """Drive `coordinator` (whose initial vector is `ForestState.empty(config, features).vector()`) through the
    training. `config` carries the noise multipliers (`forest.calibrate`); `bound` is the public |value| bound of
    one watch's release (its beats, with room for its noise share) — the packing range. Both releases are
    hundreds of ciphertexts per watch: each gets `timeout_s`, and `prepare(spec)` — the watches' offline phase
    before it — returns the seconds that took."""
    state = forest.ForestState.parse(coordinator.vector)
    c = state.config
    if (c.trees, c.depth, c.n_bins) != (config.trees, config.depth, config.n_bins) or state.stage != 0:
        raise ValueError("the coordinator's initial state is not this configuration's empty forest")
    if bool(config.noise_multiplier) != bool(config.count_noise_multiplier):
        raise ValueError("with DP both releases are noised: `accounted_epsilon` charges both")
    if coordinator.config.model_delta_bits != LOSSLESS:
        raise ValueError("the forest's state needs lossless model deltas (model_delta_bits=0)")
    k = coordinator.config.min_clients
    result = ForestResult(state)

    def release(round_id: int, kind: Literal["forest_counts", "forest_leaves"], params: int, sensitivity: float,
                multiplier: float, label: str) -> np.ndarray:
        spec = Release(request=ReleaseRequest(kind=kind), params=params, clip=sensitivity, bound=bound,
                       dp=gaussian_dp(multiplier * sensitivity, k, delta), timeout_s=timeout_s)
        got: list[np.ndarray] = []
        record = labelled_release(coordinator, round_id, spec, label, lambda total, _clients: got.append(total),
                                  prepare=prepare, progress=progress)
        result.records.append(record)
        if record.status != "ok" or not got:
            raise ForestRunError(f"release {label!r} was not decrypted ({record.status}, {record.clients} watches, "
                                 f"k = {k}): no model")
        return got[0]

    features, classes = state.features, c.n_classes
    # a beat adds 1 to one cell per feature
    counts = release(0, "forest_counts", features * FINE_BINS * classes, math.sqrt(features),
                     config.count_noise_multiplier, "counts")
    # the state carries the structure's size; how the counts become weights is the configuration's
    public = forest.public_from_counts(counts.reshape(features, FINE_BINS, classes),
                                       replace(c, weight_power=config.weight_power))
    # float32, as the watches hold them: the leaves below are weighted with these very values
    state.class_weight = public.class_weight.astype(np.float32).astype(np.float64)
    state.coarse, state.stage = public.coarse, 1
    coordinator.advance(state.vector())
    # a beat adds 1 to one leaf per tree
    leaves = release(1, "forest_leaves", c.trees * c.leaves * classes, math.sqrt(c.trees), config.noise_multiplier,
                     "leaves")
    state.leaf_proba = forest.leaf_distributions(leaves.reshape(c.trees, c.leaves, classes), state.class_weight)
    state.stage = 2
    coordinator.advance(state.vector())
    result.state = forest.ForestState.parse(coordinator.vector)
    return result
