"""`cardiomesh fl forest`: the DP forest (`shared.fl.forest`, ADR 0021) trained over the real broker — one watch per
MIT-BIH DS1 patient answers two release rounds (its count table on the public grid, then its beats' counts per
tree, leaf and class of the published structure, each plus its share of the Gaussian noise, packed and
Paillier-encrypted), the edge hubs sum them blind, and the coordinator decrypts only sums of ≥ k watches and
publishes the bins, then the leaves, signed.

The defaults are the cell `bench/_dp_forest.py --protocol loro` chose on DS1 (the 8 DP features, 16 bins, 150
trees of depth 8, V offset −0.25).

Writes `<run>/model.npz` (read by `cardiomesh evaluate`), `<run>/releases.json` and, with DS2 at hand, its
inter-patient figures.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiomesh.fl import FederationError, ReleaseRunResult, beat_sets, new_run_dir, run_release_fleet
from cloud_expert.coordinator.coordinator import RoundConfig, RoundRecord
from cloud_expert.coordinator.forest import ForestRunError, run_forest
from shared.fl import forest
from shared.model.data import DS1, BeatSet
from shared.model.evaluation import per_recording_metrics
from shared.model.tree_features import DP_FEATURES, FEATURE_NAMES
from shared.settings import Settings
from watch_agent.forest_learner import ForestLearner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForestOptions:
    clients: int = len(DS1)
    trees: int = 150
    depth: int = 8
    bins: int = 16
    epsilon: float | None = 8.0  # sample-level (ε, δ) of each wearer's beats over the whole training; None: no DP
    delta: float = 1e-5
    #: the operating point, added to the V logit of the released model: chosen on DS1 (the training wearers), a use
    #: of their data the budget does not charge (docs/privacy.md)
    v_offset: float = -0.25
    encrypt: bool = True
    edges: int = 1
    #: public |value| bound of one watch's release (the packing range): its beats (DS1's largest record has
    #: 3,360 labelled ones, record 215) with room for its noise share. Values beyond are clipped and counted.
    client_bound: float = 8000.0
    #: k; default every watch: without either sum there is no model. Each noise share is sized for k
    min_clients: int | None = None
    timeout_s: float = 900.0
    seed: int = 0  # the public structure; the noise is always from OS entropy
    run_dir: Path | None = None
    records: tuple[str, ...] = DS1
    test_split: str = "DS2"


def forest_config(options: ForestOptions) -> forest.ForestConfig:
    config = forest.ForestConfig(trees=options.trees, depth=options.depth, n_bins=options.bins, seed=options.seed)
    if options.epsilon is None or math.isinf(options.epsilon):
        return config
    return forest.calibrate(config, options.epsilon, delta=options.delta)


#: what a signed model message adds to its base64 vector (version, signature, hashes, JSON), with room
MESSAGE_OVERHEAD = 16 * 1024


def fleet_settings(settings: Settings, state: np.ndarray) -> Settings:
    """`settings` with a payload limit the forest's state fits: at the chosen cell it is 232,160 float32 values,
    1.24 MB as a signed message, over the 512 KB default meant for the monitoring traffic. A deployed watch that
    joins such a training needs the same limit (`CARDIOMESH_MAX_PAYLOAD_BYTES`)."""
    needed = math.ceil(state.size * 4 / 3) * 4 + MESSAGE_OVERHEAD  # base64 of float32
    if needed <= settings.max_payload_bytes:
        return settings
    log.warning("payload limit raised for the forest's model messages", extra={
        "from_bytes": settings.max_payload_bytes, "to_bytes": needed, "values": int(state.size)})
    return settings.model_copy(update={"max_payload_bytes": needed})


def run_forest_federation(settings: Settings, options: ForestOptions, *,
                          progress: Callable[[RoundRecord, str], None] | None = None,
                          train_sets: dict[str, BeatSet] | None = None,
                          test_sets: dict[str, BeatSet] | None = None) -> ReleaseRunResult:
    config = forest_config(options)
    columns = [FEATURE_NAMES.index(name) for name in DP_FEATURES]
    values = max(config.trees * config.leaves, len(columns) * forest.FINE_BINS) * config.n_classes
    if values > forest.MAX_RELEASE:
        raise FederationError(f"a release of {values:,} values is more than a round may announce "
                              f"({forest.MAX_RELEASE:,}): fewer trees or less depth")
    train_sets, test_sets = beat_sets(settings, options.records[: options.clients], options.test_split,
                                      train_sets, test_sets)
    run_dir = new_run_dir(settings, options.run_dir, "fl-forest")
    learners = [(name, ForestLearner.from_beats(train_sets[name], columns))
                for name in sorted(train_sets)[: options.clients]]
    n = len(learners)
    round_config = RoundConfig(encrypt=options.encrypt, quant_bits=24, max_clients=max(64, n),
                               min_clients=options.min_clients or n, round_timeout_s=options.timeout_s,
                               grace_s=2.0, model_delta_bits=0)  # lossless: the watches hold the coordinator's bytes
    initial = forest.ForestState.empty(config, len(columns)).vector()
    fleet_run = run_release_fleet(
        fleet_settings(settings, initial), "forest", learners, initial=initial,
        round_config=round_config, edges=options.edges, run_errors=(ForestRunError,),
        train=lambda coordinator, prepare: run_forest(coordinator, config, bound=options.client_bound,
                                                      delta=options.delta, progress=progress,
                                                      timeout_s=options.timeout_s, prepare=prepare))
    result = fleet_run.result
    released = forest.with_class_bias(result.model, np.array([0.0, 0.0, options.v_offset, 0.0]))
    epsilon = forest.accounted_epsilon(config, delta=options.delta) if config.noise_multiplier else None
    meta = {"clients": n, "features": list(DP_FEATURES), "trees": config.trees, "depth": config.depth,
            "bins": config.n_bins, "epsilon": epsilon, "delta": options.delta if epsilon is not None else None,
            "level": "sample", "noise_multiplier": config.noise_multiplier, "v_logit_offset": options.v_offset,
            "encrypt": options.encrypt, "over": "mqtt", "releases": len(result.records),
            "privacy": f"sample-level DP, ε {epsilon:.2f}, δ {options.delta:g}" if epsilon is not None else "no DP"}
    model_path = run_dir / "model.npz"
    forest.save(model_path, released, columns, meta)
    final = None
    if test_sets:
        final = per_recording_metrics(lambda s: forest.predict_beats(released, np.asarray(columns), s),
                                      list(test_sets.values()))
    out = ReleaseRunResult(
        run_dir=run_dir, model_path=model_path, releases=len(result.records), epsilon=epsilon,
        delta=options.delta if epsilon is not None else None, noise_multiplier=round(config.noise_multiplier, 4),
        seconds=round(fleet_run.seconds, 1), bytes_per_client=fleet_run.bytes_per_client, final_metrics=final,
        records=[r.as_dict() for r in result.records], release_clipped=fleet_run.release_clipped,
        offline_precompute_s=sum(float(r.extra.get("offline_precompute_s", 0.0)) for r in result.records))
    (run_dir / "releases.json").write_text(json.dumps(out.as_dict(), indent=2, default=str) + "\n")
    return out
