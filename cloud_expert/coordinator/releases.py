"""What the release-round trainers (`additive`, `trees`, `forest`) do around every release alike: the round's
Gaussian noise for k shares, the watches' offline phase before it, and the record's label and progress report."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundRecord
from shared.messages import DpConfig, RoundPayload


def gaussian_dp(sigma: float, k: int, delta: float) -> DpConfig:
    """The round's noise: each of ≥ k watches adds its share, so a decrypted sum carries at least σ (none at 0)."""
    return DpConfig(mechanism="gaussian", noise_scale=sigma, planned_clients=k, delta=delta) if sigma else DpConfig()


def labelled_release(coordinator: Coordinator, round_id: int, spec: Release, label: str,
                     step: Callable[[np.ndarray, int], np.ndarray | None], *,
                     prepare: Callable[[RoundPayload], float] | None = None,
                     progress: Callable[[RoundRecord, str], None] | None = None) -> RoundRecord:
    """`coordinator.run_release`, preceded by the watches' offline phase when `prepare` is given (its seconds go in
    the record) and followed by `progress(record, label)`; the record carries `label` as its "release"."""
    offline = prepare(coordinator.build_spec(round_id, spec)) if prepare is not None else None
    record = coordinator.run_release(round_id, spec, step)
    record.extra["release"] = label
    if offline is not None:
        record.extra["offline_precompute_s"] = round(offline, 3)
    if progress is not None:
        progress(record, label)
    return record
