"""Tiny models and hand-made beats: the model unit tests run in seconds."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from shared.model.data import BeatSet
from shared.model.features import N_CONTEXT, WAVE_CHANNELS, WAVE_LEN
from shared.model.net import BeatNet, NetConfig

TINY = NetConfig(channels=(4, 4), kernel=5, groups=2, pooled=2, context_hidden=8, hidden=8)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny batches: intra-op threads only add wake-up latency on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model() -> BeatNet:
    torch.manual_seed(0)
    return BeatNet(TINY)


def toy_beats(n: int = 160, seed: int = 0) -> BeatSet:
    """Separable toy beats: class k has a bump at a class-specific place and a class-specific prev-RR."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=n, p=[0.55, 0.15, 0.2, 0.1]).astype(np.int64)
    wave = rng.normal(0, 0.3, (n, WAVE_CHANNELS, WAVE_LEN)).astype(np.float32)
    for i, k in enumerate(y):
        wave[i, :, 20 + 35 * k: 35 + 35 * k] += 2.0
    ctx = rng.normal(0, 0.1, (n, N_CONTEXT)).astype(np.float32)
    ctx[:, 0] += 0.8 - 0.2 * (y == 1)
    ctx[:, 4] -= 0.3 * (y == 1)
    y[:3] = [-1, 4, -1]  # an unmatched detection and a Q beat: never trained on nor scored
    return BeatSet(wave, ctx, y, np.arange(n) * 200, "toy", n)


@pytest.fixture
def toy() -> BeatSet:
    return toy_beats()
