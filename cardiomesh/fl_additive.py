"""`cardiomesh fl additive`: the federated additive beat model (`shared.fl.gam`, ADR 0017) trained over the real
broker — one watch per MIT-BIH DS1 patient answers release rounds (its count table once, then its clipped gradient
sums feature by feature, each plus its share of the Gaussian noise, packed and Paillier-encrypted), the edge hubs sum
them blind, and the coordinator decrypts only sums of ≥ k watches and publishes each new shape signed.

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
from typing import Any

import numpy as np

from cardiomesh.fl import FederationError, ReleaseRunResult, beat_sets, new_run_dir, run_release_fleet
from cloud_expert.coordinator.additive import AdditiveRunError, run_additive
from cloud_expert.coordinator.coordinator import RoundConfig, RoundRecord
from shared.fl import gam
from shared.model.data import DS1, BeatSet
from shared.model.evaluation import additive_metrics
from shared.model.tree_features import n_features
from shared.settings import Settings
from watch_agent.additive_learner import AdditiveLearner

log = logging.getLogger(__name__)

#: the feature sets `bench/fl_additive.py` chooses between on DS1: the 22 named record-relative features, or
#: those and the 41 samples of the beat window
FEATURE_SETS = {"named": 22, "all": 63}


@dataclass(frozen=True)
class AdditiveOptions:
    clients: int = len(DS1)
    features: str = "named"
    epochs: int = 30
    bins: int = 16
    learning_rate: float = 0.5
    epsilon: float | None = 8.0  # sample-level (ε, δ) of each wearer's beats over the whole training; None: no DP
    delta: float = 1e-5
    v_offset: float = 0.0  # the operating point: added to the V logit of the released model (no privacy cost)
    encrypt: bool = True
    edges: int = 1
    client_bound: float = 8000.0  # public |value| bound of one watch's release: its beats × clip 2, and noise
    #: k; default 75 % of the watches, as `fl run`: a release a few watches miss is still decrypted. Each noise
    #: share is sized for k, so a sum of all n carries σ·√(n/k) — more noise than charged, never less
    min_clients: int | None = None
    round_timeout_s: float = 120.0
    seed: int = 0  # the public term order; the noise is always from OS entropy
    run_dir: Path | None = None
    records: tuple[str, ...] = DS1
    test_split: str = "DS2"


@dataclass(kw_only=True)
class AdditiveRunResult(ReleaseRunResult):
    skipped: int  # releases below k: their terms kept their shapes
    without_offset_metrics: dict[str, Any] | None = None


def gam_config(options: AdditiveOptions) -> gam.GamConfig:
    """The training configuration: `bench/fl_additive.py`'s, calibrated to the budget when there is one."""
    if options.features not in FEATURE_SETS:
        raise FederationError(f"features: one of {', '.join(FEATURE_SETS)} (got {options.features!r})")
    config = gam.GamConfig(epochs=options.epochs, n_bins=options.bins, learning_rate=options.learning_rate,
                           seed=options.seed)
    if options.epsilon is None or math.isinf(options.epsilon):
        return config
    return gam.calibrate(config, FEATURE_SETS[options.features], options.epsilon, delta=options.delta)


def run_additive_federation(settings: Settings, options: AdditiveOptions, *,
                            progress: Callable[[RoundRecord, str], None] | None = None,
                            train_sets: dict[str, BeatSet] | None = None,
                            test_sets: dict[str, BeatSet] | None = None) -> AdditiveRunResult:
    train_sets, test_sets = beat_sets(settings, options.records[: options.clients], options.test_split,
                                      train_sets, test_sets)
    config = gam_config(options)
    columns = FEATURE_SETS[options.features]
    if columns > n_features():
        raise FederationError(f"{columns} features asked, the beat features have {n_features()}")
    run_dir = new_run_dir(settings, options.run_dir, "fl-additive")
    learners = [(name, AdditiveLearner.from_beats(train_sets[name], columns))
                for name in sorted(train_sets)[: options.clients]]
    n = len(learners)
    round_config = RoundConfig(encrypt=options.encrypt, quant_bits=24, max_clients=max(64, n),
                               min_clients=options.min_clients or max(2, math.ceil(0.75 * n)),
                               round_timeout_s=options.round_timeout_s, grace_s=2.0,
                               model_delta_bits=0)  # lossless: the watches hold the coordinator's very bytes
    fleet_run = run_release_fleet(
        settings, "additive", learners, initial=gam.empty_state(columns, config), round_config=round_config,
        edges=options.edges, run_errors=(AdditiveRunError,),
        train=lambda coordinator, prepare: run_additive(coordinator, config, columns, bound=options.client_bound,
                                                        delta=options.delta, progress=progress, prepare=prepare))
    result = fleet_run.result
    released = gam.with_class_bias(result.model, np.array([0.0, 0.0, options.v_offset, 0.0]))
    epsilon = result.epsilon(config, options.delta)
    meta = {"clients": n, "features": options.features, "epochs": options.epochs, "bins": options.bins,
            "epsilon": epsilon, "delta": options.delta if epsilon is not None else None, "level": "sample",
            "noise_multiplier": config.noise_multiplier, "v_offset": options.v_offset, "encrypt": options.encrypt,
            "over": "mqtt", "releases": result.gradient_releases + 1, "skipped": result.skipped}
    model_path = run_dir / "model.npz"
    gam.save(model_path, released, columns, meta)
    final = without = None
    if test_sets:
        sets = list(test_sets.values())
        final = additive_metrics(released, columns, sets)
        if options.v_offset:
            without = additive_metrics(result.model, columns, sets)
    out = AdditiveRunResult(
        run_dir=run_dir, model_path=model_path, releases=len(result.records) - result.skipped, skipped=result.skipped,
        epsilon=epsilon, delta=options.delta if epsilon is not None else None,
        noise_multiplier=round(config.noise_multiplier, 4),
        seconds=round(fleet_run.seconds, 1), bytes_per_client=fleet_run.bytes_per_client, final_metrics=final,
        without_offset_metrics=without, records=[r.as_dict() for r in result.records],
        release_clipped=fleet_run.release_clipped,
        offline_precompute_s=float(result.records[0].extra.get("offline_precompute_s", 0.0)))
    (run_dir / "releases.json").write_text(json.dumps(out.as_dict(), indent=2, default=str) + "\n")
    return out
