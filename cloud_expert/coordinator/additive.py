"""The coordinator's side of the federated additive beat model over the bus (`shared.fl.gam`, ADR 0017).

The same schedule `FederatedGam.fit` runs in process, as release rounds of the real protocol: one count release,
from which the coordinator derives the class weights, the bins and their weights (published as version 1); then,
epoch by epoch in the public seeded order, one gradient release per feature, each decrypted sum turned into that
feature's shape step and published, signed, as the next version. Every watch computes its next release against the
version it holds, so the model the watches see is the model the coordinator keeps, bit for bit (lossless deltas).

A release that fewer than k watches answer is not decrypted: the term keeps its shape and no privacy is spent
on it. The count release is the exception — without it there are no bins — and ends the run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cloud_expert.coordinator.coordinator import Coordinator, Release, RoundRecord
from cloud_expert.coordinator.releases import gaussian_dp, labelled_release
from shared.fl import gam
from shared.messages import ReleaseRequest, RoundPayload

log = logging.getLogger(__name__)


class AdditiveRunError(RuntimeError):
    """The run cannot go on (the count release was not answered by k watches)."""


@dataclass
class AdditiveResult:
    model: gam.GamModel
    records: list[RoundRecord] = field(default_factory=list)
    gradient_releases: int = 0  # decrypted ones: what the privacy bill counts
    skipped: int = 0  # below k: the term kept its shape

    def epsilon(self, config: gam.GamConfig, delta: float) -> float | None:
        if not config.noise_multiplier:
            return None
        return gam.accounted_epsilon(config, self.model.shapes.shape[0], delta=delta,
                                     gradient_releases=self.gradient_releases)


def run_additive(coordinator: Coordinator, config: gam.GamConfig, features: int, *, bound: float,
                 delta: float = 1e-5, progress: Callable[[RoundRecord, str], None] | None = None,
                 count_timeout_s: float = 900.0,
                 prepare: Callable[[RoundPayload], float] | None = None) -> AdditiveResult:
    """Drive `coordinator` (whose initial vector is `gam.empty_state(features, config)`) through the whole
    training. `bound`: the public |value| bound of one watch's release (its beats × the clip, with room for its
    noise share) — the packing range. The count release is hundreds of ciphertexts per watch (the gradient
    releases one or two): it gets `count_timeout_s`, and `prepare(spec)` — the watches' offline phase, their
    encryption randomness computed before it is announced — returns the seconds that took."""
    if config.pairs:
        raise ValueError("pairwise terms do not travel over the bus (they lost on DS1; docs/fl.md)")
    c = config
    k = coordinator.config.min_clients
    round_id = 0

    def release(request: ReleaseRequest, params: int, clip: float, sigma: float,
                step: Callable[[np.ndarray, int], np.ndarray], label: str, timeout_s: float | None = None
                ) -> RoundRecord:
        nonlocal round_id
        spec = Release(request=request, params=params, clip=clip, bound=bound, dp=gaussian_dp(sigma, k, delta),
                       timeout_s=timeout_s)
        record = labelled_release(coordinator, round_id, spec, label, step,
                                  prepare=prepare if timeout_s else None, progress=progress)
        round_id += 1
        return record

    public: list[gam.GamPublic] = []

    def from_counts(total: np.ndarray, _clients: int) -> np.ndarray:
        public.append(gam.from_counts(total.reshape(features, gam.FINE_BINS, c.n_classes), c))
        return gam.state_vector(public[0].coarse, public[0].class_weight,
                                np.zeros((features, c.n_bins, c.n_classes)))

    count_sensitivity = math.sqrt(features)  # a beat adds 1 to one cell per feature
    first = release(ReleaseRequest(kind="gam_counts"), features * gam.FINE_BINS * c.n_classes, count_sensitivity,
                    c.count_noise_multiplier * count_sensitivity, from_counts, "counts", count_timeout_s)
    if first.status != "ok" or not public:
        raise AdditiveRunError(f"the count release was not decrypted ({first.status}, {first.clients} watches, "
                               f"k = {k}): no bins, no model")
    result = AdditiveResult(model=gam.parse_state(coordinator.vector), records=[first])
    everyone = list(coordinator.participants)
    for epoch, order in enumerate(gam.term_orders(c, features)):
        coordinator.participants = list(everyone)  # each epoch asks every watch again: one that came back rejoins
        for term in order:
            def step(total: np.ndarray, _clients: int, term: int = int(term)) -> np.ndarray:
                held = gam.parse_state(coordinator.vector)  # what the watches hold: float32, as published
                shapes = held.shapes.copy()
                shapes[term] += gam.term_step(total.reshape(c.n_bins, c.n_classes), public[0].bin_weight[term], c)
                return gam.state_vector(held.coarse, held.class_weight, shapes)

            record = release(ReleaseRequest(kind="gam_gradients", term=int(term)), c.n_bins * c.n_classes, c.clip,
                             c.noise_multiplier * c.clip, step, f"epoch {epoch + 1}, feature {int(term)}")
            result.records.append(record)
            if record.status == "ok":
                result.gradient_releases += 1
                # a watch that missed this release is not waited for again this epoch: one flat battery would
                # otherwise hold every later release to its deadline
                answered = set(record.contributors)
                coordinator.participants = [p for p in coordinator.participants if p in answered]
            else:
                result.skipped += 1
                log.warning("release skipped: the term keeps its shape",
                            extra={"round": record.round, "status": record.status, "clients": record.clients})
    result.model = gam.parse_state(coordinator.vector)
    return result
