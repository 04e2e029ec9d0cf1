"""The coordinator's side of the federated trees over the bus (`shared.fl.trees`, ADR 0020).

The schedule `FederatedBoosting.fit` runs in process, as release rounds of the real protocol: the class counts
(→ class weights) and the beat counts over a public grid (→ bin edges, `edges_from_counts`), published together as
the first ready state; then, round by round and class by class, the tree is grown by `grow_tree` — the very
function the in-process trainer calls — whose every question (the histograms of the beats in some open nodes) is one
release: the state with the tree as grown so far is published, signed, the watches answer against it, the edges sum
blind, and the coordinator decrypts only sums of ≥ k. A finished round is published with its trees added, so every
watch scores its beats with exactly the trees the coordinator keeps (lossless deltas).

A tree cannot be grown without its histograms: a release fewer than k watches answer ends the run
(`TreesRunError`); the coordinator still holds the finished rounds, but no model is released.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundRecord
from cloud_expert.coordinator.releases import gaussian_dp, labelled_release
from shared.fl.model_delta import LOSSLESS
from shared.fl.tree_state import TreeState
from shared.fl.trees import Tree, TreeConfig, edges_from_counts, grow_tree, noised_floor, sketch_grid
from shared.messages import ReleaseRequest, RoundPayload

log = logging.getLogger(__name__)


class TreesRunError(RuntimeError):
    """The run cannot go on (a release was not answered by k watches, or could not be decrypted)."""


@dataclass
class TreesResult:
    state: TreeState  # as the watches hold it: parsed from the last published vector (float32)
    records: list[RoundRecord] = field(default_factory=list)


def check_plan(config: TreeConfig, state: TreeState, *, class_sigma: float, model_delta_bits: int) -> None:
    """Refuse, before the first release, a training that could not finish or would not keep its promise: a noise
    the accountant does not charge as it is released, a lossy model delta (node indices and bins must arrive exact),
    or a release larger than a round may announce."""
    z = config.noise_multiplier
    if z and (class_sigma < z or not config.private_edges):
        raise ValueError("with DP the class counts need σ ≥ the noise multiplier and the sketch must be accounted "
                         "(private_edges=True): `dp_epsilon` charges both as Gaussian releases")
    if model_delta_bits != LOSSLESS:
        raise ValueError("the trees' state needs lossless model deltas (model_delta_bits=0)")
    widest = 1 if config.max_leaves is not None else 2 ** config.max_depth  # open nodes in one release
    channels = 3 if config.min_samples_leaf else 2
    if widest > 256 or state.max_nodes > 100_000 or channels * widest * state.features * state.n_bins > 10_000_000:
        raise ValueError(f"releases of up to {widest} nodes × {state.features} features × {state.n_bins} bins "
                         "exceed what a round may announce (256 nodes, 10 M values)")


def run_trees(coordinator: Coordinator, config: TreeConfig, *, bound: float, cells: int,
              class_weights: Callable[[np.ndarray], np.ndarray], class_sigma: float = 0.0, delta: float = 1e-5,
              progress: Callable[[RoundRecord, str], None] | None = None, sketch_timeout_s: float = 900.0,
              prepare: Callable[[RoundPayload], float] | None = None) -> TreesResult:
    """Drive `coordinator` (whose initial vector is `TreeState.empty(config, features, n_bins).vector()`) through the
    whole training. `bound`: the public |value| bound of one watch's release (its beats × the largest of a beat's
    parts, with room for its noise share) — the packing range. `class_weights(summed class counts)`: the agreed
    weights (from noised counts under DP: `class_sigma`, accounted by `dp_epsilon` as one Gaussian release). The
    sketch is hundreds of ciphertexts per watch: it gets `sketch_timeout_s`, and `prepare(spec)` — the watches'
    offline phase before it — returns the seconds that took."""
    c = config
    if c.sample_rate < 1:
        raise ValueError("beat sampling is not carried over the bus: a watch's draw would have to be announced")
    state = TreeState.parse(coordinator.vector)
    check_plan(c, state, class_sigma=class_sigma, model_delta_bits=coordinator.config.model_delta_bits)
    features, n_bins, k = state.features, state.n_bins, coordinator.config.min_clients
    z = c.noise_multiplier
    result = TreesResult(state)
    round_id = 0

    def release(request: ReleaseRequest, params: int, clip: float, sigma: float, label: str,
                timeout_s: float | None = None) -> np.ndarray:
        nonlocal round_id
        spec = Release(request=request, params=params, clip=clip, bound=bound, dp=gaussian_dp(sigma, k, delta),
                       timeout_s=timeout_s)
        got: list[np.ndarray] = []
        record = labelled_release(coordinator, round_id, spec, label, lambda total, _clients: got.append(total),
                                  prepare=prepare if timeout_s else None, progress=progress)
        round_id += 1
        result.records.append(record)
        if record.status != "ok" or not got:
            raise TreesRunError(f"release {label!r} was not decrypted ({record.status}, {record.clients} watches, "
                                f"k = {k}): the trees stop at {state.rounds_done} rounds")
        return got[0]

    # counts are integers: rounding takes off the fixed point's rounding (and, with noise, is post-processing)
    counts = np.round(release(ReleaseRequest(kind="tree_classes"), state.n_classes, 1.0, class_sigma,
                              "class counts"))
    # float32 from here on, as the watches hold them: the clip below and the saved model use their very values
    state.class_weight = np.asarray(class_weights(counts), dtype=np.float32).astype(np.float64)
    coordinator.advance(state.vector())
    grid = sketch_grid(cells)
    sketch = np.round(release(ReleaseRequest(kind="tree_sketch", cells=cells), features * cells, 1.0,
                     z * math.sqrt(features), "sketch", sketch_timeout_s))
    state.edges = edges_from_counts(sketch.reshape(features, cells), grid, n_bins).astype(np.float32).astype(float)
    state.ready = True
    coordinator.advance(state.vector())
    # a beat's weighted gradient is at most its class weight, its hessian a quarter of it: without DP this clip
    # bounds nothing; with DP it is the configuration's
    clip = c.clip if z else float(np.max(state.class_weight))
    sigma = z * c.clip * math.sqrt(2 * features)
    channels = 3 if c.min_samples_leaf else 2
    for r in range(c.rounds):
        for klass in range(c.n_classes):
            def node_release(tree: Tree, nodes: Sequence[int], r: int = r, klass: int = klass) -> np.ndarray:
                state.trees[r][klass] = tree  # the tree as grown so far: published before it is asked about
                target = state.vector()
                if not np.array_equal(target, coordinator.vector):
                    coordinator.advance(target)
                total = release(ReleaseRequest(kind="tree_histogram", klass=klass, nodes=list(nodes),
                                               counts=channels == 3),
                                channels * len(nodes) * features * n_bins, clip, sigma,
                                f"round {r + 1}, class {klass}, {len(nodes)} node(s)")
                return noised_floor(total.reshape(channels, len(nodes), features, n_bins), c)

            state.trees[r][klass] = grow_tree(c, node_release)
        state.rounds_done = r + 1
        coordinator.advance(state.vector())
    result.state = TreeState.parse(coordinator.vector)  # leaf values as published: float32
    return result
