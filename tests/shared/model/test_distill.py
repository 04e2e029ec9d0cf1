"""Distillation moves a student toward its teacher; latency and cost figures have the shape the reports use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.model.data import BeatSet
from shared.model.distill import (
    SMALL_CONFIG,
    DistillConfig,
    distill,
    file_sha256,
    measure_latency,
    multiply_accumulates,
    relative_cost,
    small_student,
)
from shared.model.net import BeatNet, NetConfig, n_parameters
from shared.model.serialize import load_model, parameters_vector
from shared.model.train import predict, train_local
from tests.shared.model.conftest import TINY, toy_beats

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
DEFAULT_MODEL, DEFAULT_SMALL_MODEL = RESULTS / "model.pt", RESULTS / "model-small.pt"

STUDENT = NetConfig(channels=(4,), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)


@pytest.fixture(scope="module")
def teacher() -> BeatNet:
    torch.manual_seed(0)
    model = BeatNet(TINY)
    train_local(model, toy_beats(400), epochs=8, batch_size=32, lr=1e-2, seed=0)
    return model


def _agreement(a: BeatNet, b: BeatNet, beats: BeatSet) -> float:
    return float(np.mean(predict(a, beats)[0] == predict(b, beats)[0]))


def test_student_learns_the_teacher_from_soft_labels_alone(teacher: BeatNet) -> None:
    """α = 1: no hard labels at all, yet the student comes to agree with the teacher on unseen beats."""
    held_out = toy_beats(300, seed=9)
    student = small_student(STUDENT, seed=1)
    before = _agreement(student, teacher, held_out)
    frozen = parameters_vector(teacher)
    result = distill(teacher, student, toy_beats(400), DistillConfig(epochs=8, batch_size=32, lr=1e-2, alpha=1.0,
                                                                     augment=False))
    assert result.n == 400 - 3 and result.epoch_losses[-1] < result.epoch_losses[0]
    assert _agreement(student, teacher, held_out) > max(0.8, before)
    np.testing.assert_array_equal(parameters_vector(teacher), frozen)  # the teacher is only read
    assert not student.training and n_parameters(student) < n_parameters(teacher)


def test_distillation_is_deterministic(teacher: BeatNet) -> None:
    vecs = []
    for _ in range(2):
        student = small_student(STUDENT, seed=2)
        distill(teacher, student, toy_beats(200), DistillConfig(epochs=1, seed=4))
        vecs.append(parameters_vector(student))
    np.testing.assert_array_equal(vecs[0], vecs[1])
    with pytest.raises(ValueError):
        distill(teacher, small_student(STUDENT), toy_beats(50), DistillConfig(alpha=1.5))


def test_latency_and_cost_figures(teacher: BeatNet) -> None:
    lat = measure_latency(teacher, toy_beats(20), (1, 3), calls=20, warmup=2)
    assert set(lat) == {"batch1", "batch3"} and all(v["median_ms"] > 0 and v["p95_ms"] >= v["median_ms"]
                                                    for v in lat.values())
    assert torch.get_num_threads() == 1  # restored (the conftest set one thread)
    half = {k: {"median_ms": v["median_ms"] / 2, "p95_ms": v["p95_ms"]} for k, v in lat.items()}
    assert relative_cost(half, lat) == pytest.approx(0.5, abs=1e-3)
    assert multiply_accumulates(NetConfig()) > 5 * multiply_accumulates(SMALL_CONFIG) > 0


@pytest.mark.skipif(not (DEFAULT_MODEL.is_file() and DEFAULT_SMALL_MODEL.is_file()), reason="no shipped models")
def test_the_shipped_small_variant_names_its_teacher_and_its_measurements() -> None:
    small, meta = load_model(DEFAULT_SMALL_MODEL)
    assert small.config == SMALL_CONFIG and meta["variant"] == "small" and meta["train"] == "DS1"
    assert meta["teacher"]["file"] == DEFAULT_MODEL.name and meta["teacher"]["sha256"] == file_sha256(DEFAULT_MODEL)
    assert 0 < meta["relative_cost"] < 1 and {"small", "full"} <= set(meta["latency_ms"])
    assert meta["test_metrics"]["ec57"]["veb"]["se"] is not None
    json.dumps(meta)
    assert DEFAULT_SMALL_MODEL.stat().st_size < DEFAULT_MODEL.stat().st_size / 2
