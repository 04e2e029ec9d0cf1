"""The federated strip head: its embedding path is the reader's own forward pass, and vectors round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.model.rhythm.beats import strip_input
from shared.model.rhythm.head import StripHead, embed, head_vector, install
from shared.model.rhythm.net import RhythmNet
from shared.model.rhythm.preprocess import RHYTHM_FS


def _strip(seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * RHYTHM_FS)) / RHYTHM_FS
    beats = (np.sin(2 * np.pi * 1.2 * t) > 0.97).astype(np.float32)  # sharp, regular spikes
    return beats + 0.02 * rng.standard_normal(len(t)).astype(np.float32)


def test_head_on_the_embedding_gives_the_readers_strip_logits() -> None:
    torch.manual_seed(0)
    model = RhythmNet().eval()
    x = _strip()
    signal, features = strip_input(x)
    with torch.no_grad():
        expected, _ = model(torch.from_numpy(signal)[None], torch.from_numpy(features)[None])
        got = StripHead(model)(torch.from_numpy(embed(model, x))[None])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_install_writes_the_head_only() -> None:
    torch.manual_seed(0)
    model = RhythmNet()
    body_before = [p.detach().clone() for p in model.blocks.parameters()]
    vector = head_vector(model)
    assert vector.dtype == np.float32 and vector.size == sum(p.numel() for p in StripHead(model).parameters())
    install(model, vector + 1.0)
    np.testing.assert_allclose(head_vector(model), vector + 1.0)
    assert all(torch.equal(a, b) for a, b in zip(body_before, model.blocks.parameters(), strict=True))
    with pytest.raises(ValueError, match="head vector has"):
        install(model, vector[:-1])
