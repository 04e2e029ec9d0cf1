"""The population bench's federated round, on a random reader and synthetic embeddings: it learns, it spends
what the accountant says, and its fixed-point sum is what the real Paillier codec decrypts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import fl_population as pop
from shared.model.rhythm.net import RhythmNet
from shared.model.rhythm.reader import RhythmReader


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> pop.Head:
    torch.manual_seed(0)
    path = RhythmReader(RhythmNet(), temperature=1.0).save(tmp_path_factory.mktemp("body") / "body.pt")
    return pop.Head(path)


def _population(head: pop.Head, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    width = 2 * head.model.config.channels[-1] + head.model.config.rr_features
    e = rng.normal(size=(n, width)).astype(np.float32)
    y = (e[:, 0] > 0).astype(np.int64) + 2 * (e[:, 1] > 1.0)  # classes 0..3 from two directions
    return e, y


def _accuracy(head: pop.Head, w: np.ndarray, e: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(head.predict(w, e) == y))


@pytest.mark.parametrize("epsilon", [8.0, math.inf])
def test_federated_rounds_learn_and_spend_what_they_claim(head: pop.Head, epsilon: float) -> None:
    e, y = _population(head)
    config = pop.FedConfig(rounds=60, cohort=80, min_clients=40, max_clients=160, average_last=10, local_steps=2)
    run = pop.train_federated(head, e, y, config, epsilon, seed=0)
    assert _accuracy(head, run.vector, e, y) > _accuracy(head, head.initial, e, y) + 0.2
    assert len(run.reporters) + run.skipped == config.rounds
    if math.isinf(epsilon):
        assert run.noise_multiplier == 0 and run.epsilon == 0
    else:
        assert run.noise_multiplier > 0 and 7.5 < run.epsilon <= 8.0


def test_the_fixed_point_sum_is_what_the_real_codec_decrypts(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pop, "WORK", tmp_path)
    rng = np.random.default_rng(2)
    config = pop.FedConfig(min_clients=3)
    spec = pop.packing_for(config, share_std=0.05)
    noised = np.clip(rng.normal(0, 0.1, size=(5, 40)), -1, 1)
    levels = pop.quantize(noised, spec, rng=rng).reshape(noised.shape)
    total = pop.dequantize_sum(levels.sum(axis=0), len(noised), spec)
    out = pop.encrypted_round(noised, total, spec, config.min_clients)
    assert out["encrypted_matches_plain_within_bound"]
    assert out["max_abs_error_encrypted"] <= out["error_bound"]
    assert out["reporters"] == 5 and out["aggregate_bytes"] == out["update_bytes_per_client"]
    costs = pop.round_costs(out, head_params=40, cohort=5)
    assert costs["bytes_per_round"] == out["update_bytes"] + out["aggregate_bytes"] + 4 * 40 * 5


def test_clip_rows_bounds_each_clients_update() -> None:
    u = np.array([[3.0, 4.0], [0.3, 0.4]])
    np.testing.assert_allclose(pop.clip_rows(u, 1.0), [[0.6, 0.8], [0.3, 0.4]])
