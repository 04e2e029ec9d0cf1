"""`cardiomesh fl trees`: the federated gradient-boosted beat trees (`shared.fl.trees`, ADR 0020) trained over the
real broker — one watch per MIT-BIH DS1 patient answers release rounds (its class counts, its beat counts over a
public grid, then the gradient and hessian sums of its beats in the nodes each split leaves open, each plus its
share of the Gaussian noise, packed and Paillier-encrypted), the edge hubs sum them blind, and the coordinator
decrypts only sums of ≥ k watches, grows the trees from them and publishes every split signed.

Three configurations (`PRESETS`), each chosen on DS1 alone (`bench/fl_trees.py`, `bench/_trees_loro.py`,
`bench/_tree_cost.py`): `dp`, the sample-level-DP trees (8 features, 16 bins, 5 rounds of depth 2 at ε = 8),
whose whole training is ~60 small releases; `leafwise`, the no-DP model (63 features, 255 bins, ≤ 31 leaves, 200
rounds), whose ≈ 24,000 releases of 48,000 values each are far more than a watch can encrypt (docs/fl.md); and
`compact`, the same growth with 63 bins and 100 rounds, ≈ 7 × fewer values. Without DP they are for a few rounds
over the bus, to measure a release.

Writes `<run>/model.npz` (read by `cardiomesh evaluate`), `<run>/releases.json` and, with DS2 at hand, its
inter-patient figures.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from cardiomesh.fl import FederationError, ReleaseRunResult, beat_sets, new_run_dir, run_release_fleet
from cloud_expert.coordinator.coordinator import Coordinator, RoundConfig, RoundRecord
from cloud_expert.coordinator.trees import TreesResult, TreesRunError, run_trees
from shared.fl import trees
from shared.fl.tree_state import TreeState
from shared.messages import RoundPayload
from shared.model.data import DS1, BeatSet
from shared.model.evaluation import per_recording_metrics
from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES, n_features
from shared.settings import Settings
from watch_agent.tree_learner import TreeLearner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TreePreset:
    """A tree configuration and the rules around it: which features, how many bins, the class weights."""

    config: trees.TreeConfig
    features: tuple[str, ...] | None  # named `tree_features` columns; None: all of them (63, the beat window's too)
    n_bins: int  # bins per feature, bin 0 (missing values) included
    weight_power: float  # class weights balanced to this power (½: square-root balanced)
    weight_cap: float
    cells: int  # the public grid the beat counts are summed over (the bins are its quantiles)
    quant_bits: int  # fixed-point bits of each packed value
    #: public |value| bound of one watch's release (the packing range): its beats × a beat's largest weighted part,
    #: with room for its noise share. DS1's largest record has ≈ 3,400 labelled beats; the DP trees' parts are
    #: clipped to 2, the no-DP ones weigh up to ≈ 31 (balanced, class F). Values beyond are clipped and counted.
    bound: float


_LEAF_WISE = trees.TreeConfig(rounds=200, max_depth=6, learning_rate=0.1, lam=0.0, min_hessian=1e-3, max_leaves=31,
                              min_samples_leaf=20)
PRESETS: dict[str, TreePreset] = {
    # bench/fl_trees.py's DP trees: the size its DS1 leave-one-record-out chose (fl_trees.json), the bins from the
    # private sketch's 512 cells (bench/_tree_bins.py), sqrt class weights capped at 2 (the clip)
    "dp": TreePreset(trees.TreeConfig(rounds=5, max_depth=2, learning_rate=0.5, clip=2.0, min_hessian=5.0,
                                      private_edges=True), DP_FEATURES, 16, 0.5, 2.0, trees.SKETCH_GRID_CELLS, 24,
                     8000.0),
    # bench/_trees_loro.py's choice (leaf-wise, 200 rounds) as bench/fl_trees.py trains it in process; its bins
    # come from summed grid counts here (the bus sums, it does not merge per-client sketches), on a finer grid
    "leafwise": TreePreset(_LEAF_WISE, None, 256, 1.0, math.inf, 4096, 32, 120_000.0),
    # bench/_tree_cost.py's choice on DS1: the same growth with 63 bins and 100 rounds (VEB F1 0.8916 against
    # 0.8955; 7 × fewer values a watch)
    "compact": TreePreset(replace(_LEAF_WISE, rounds=100), None, 64, 1.0, math.inf, 2048, 32, 120_000.0),
}


@dataclass(frozen=True)
class TreeOptions:
    preset: str = "dp"
    clients: int = len(DS1)
    rounds: int | None = None  # the preset's unless given (fewer: a quicker look)
    epsilon: float | None = 8.0  # sample-level (ε, δ) of each wearer's beats over the whole training; None: no DP
    delta: float = 1e-5
    encrypt: bool = True
    edges: int = 1
    client_bound: float | None = None  # the preset's bound unless given (`TreePreset.bound`)
    #: k; default every watch: a tree cannot be grown from part of its histograms and finished later
    min_clients: int | None = None
    round_timeout_s: float = 120.0
    run_dir: Path | None = None
    records: tuple[str, ...] = DS1
    test_split: str = "DS2"


@dataclass(kw_only=True)
class TreeRunResult(ReleaseRunResult):
    rounds: int
    release_s: dict[str, float] = field(default_factory=dict)


def columns_of(preset: TreePreset) -> list[int]:
    """Which of `tree_features`' columns the preset's trees read."""
    if preset.features is None:
        return list(range(n_features()))
    return [FEATURE_NAMES.index(name) for name in preset.features]


def tree_config(options: TreeOptions) -> tuple[TreePreset, trees.TreeConfig, float]:
    """The preset, its configuration for these options (noise calibrated to the budget), and the class counts'
    noise σ."""
    preset = PRESETS.get(options.preset)
    if preset is None:
        raise FederationError(f"preset: one of {', '.join(PRESETS)} (got {options.preset!r})")
    config = replace(preset.config, rounds=options.rounds or preset.config.rounds)
    if options.epsilon is None or math.isinf(options.epsilon):
        return preset, replace(config, private_edges=False), 0.0
    if config.max_leaves is not None:
        raise FederationError(f"the {options.preset} trees have no DP accounting (leaf-wise growth): use --no-dp")
    z = trees.noise_multiplier_for(options.epsilon, config, delta=options.delta)
    # the class counts' σ: z × the largest weighted part of a beat, ≥ z × their sensitivity (1) — as in process
    return preset, replace(config, noise_multiplier=z), z * config.clip * math.sqrt(2 * len(columns_of(preset)))


def run_tree_federation(settings: Settings, options: TreeOptions, *,
                        progress: Callable[[RoundRecord, str], None] | None = None,
                        train_sets: dict[str, BeatSet] | None = None,
                        test_sets: dict[str, BeatSet] | None = None) -> TreeRunResult:
    train_sets, test_sets = beat_sets(settings, options.records[: options.clients], options.test_split,
                                      train_sets, test_sets)
    preset, config, class_sigma = tree_config(options)
    columns = columns_of(preset)
    run_dir = new_run_dir(settings, options.run_dir, "fl-trees")
    learners = [(name, TreeLearner.from_beats(train_sets[name], columns))
                for name in sorted(train_sets)[: options.clients]]
    n = len(learners)
    round_config = RoundConfig(encrypt=options.encrypt, quant_bits=preset.quant_bits, max_clients=max(64, n),
                               min_clients=options.min_clients or n, round_timeout_s=options.round_timeout_s,
                               grace_s=2.0, model_delta_bits=0)  # lossless: the watches hold the coordinator's bytes

    def train(coordinator: Coordinator, prepare: Callable[[RoundPayload], float]) -> TreesResult:
        return run_trees(coordinator, config, bound=options.client_bound or preset.bound, cells=preset.cells,
                         class_weights=lambda counts: trees.class_weights(counts, power=preset.weight_power,
                                                                          cap=preset.weight_cap),
                         class_sigma=class_sigma, delta=options.delta, progress=progress, prepare=prepare)

    fleet_run = run_release_fleet(settings, "trees", learners,
                                  initial=TreeState.empty(config, len(columns), preset.n_bins).vector(),
                                  round_config=round_config, edges=options.edges, train=train,
                                  run_errors=(TreesRunError,))
    result = fleet_run.result
    model = replace(result.state.model(), columns=tuple(columns))
    epsilon = trees.dp_epsilon(config, config.noise_multiplier, delta=options.delta) if config.noise_multiplier \
        else None
    named = len(FEATURE_NAMES)  # then the beat window's samples
    meta = {"clients": n, "preset": options.preset, "rounds": config.rounds,
            "features": [FEATURE_NAMES[c] if c < named else f"window_{c - named}" for c in columns],
            "bins": preset.n_bins, "epsilon": epsilon, "delta": options.delta if epsilon is not None else None,
            "level": "sample" if epsilon is not None else None, "noise_multiplier": config.noise_multiplier,
            "encrypt": options.encrypt, "over": "mqtt", "releases": len(result.records)}
    model_path = run_dir / "model.npz"
    trees.save_model(model_path, model, meta)
    final = None
    if test_sets:
        final = per_recording_metrics(lambda s: trees.predict_beats(model, s), list(test_sets.values()))
    histogram_s = sorted(r.seconds for r in result.records[2:])
    out = TreeRunResult(
        run_dir=run_dir, model_path=model_path, releases=len(result.records), rounds=result.state.rounds_done,
        epsilon=epsilon, delta=options.delta if epsilon is not None else None,
        noise_multiplier=round(config.noise_multiplier, 4), seconds=round(fleet_run.seconds, 1),
        bytes_per_client=fleet_run.bytes_per_client, final_metrics=final,
        offline_precompute_s=float(result.records[1].extra.get("offline_precompute_s", 0.0)),
        release_clipped=fleet_run.release_clipped,
        release_s={"class_counts": result.records[0].seconds, "sketch": result.records[1].seconds,
                   "histogram_median": histogram_s[len(histogram_s) // 2] if histogram_s else 0.0,
                   "histogram_max": histogram_s[-1] if histogram_s else 0.0},
        records=[r.as_dict() for r in result.records])
    (run_dir / "releases.json").write_text(json.dumps(out.as_dict(), indent=2, default=str) + "\n")
    return out
