"""The rhythm reader's strip head as the unit a population federates.

Why only the head: a population of wearers holds one short strip each, and user-level DP must hide
a whole wearer, so every round's noise is sized to one wearer's whole update. Over the reader's
≈ 174 k parameters that noise drowns the signal; over the strip head's ≈ 11 k it does not (noise per
coordinate is the same, the signal per coordinate is ~√16 larger). The convolutional body is trained
on public data (the annotated databases) and frozen; each device runs it anyway to read its strip,
so what it trains on is its own strip's embedding: attention-pooled and mean frame features beside
the strip's RR features, exactly what `RhythmNet.forward` feeds its strip head. Only the head moves.

The result is still one `RhythmNet` (`install`): the phone, the watch and the edge load it as they
load any reader.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from shared.model.rhythm.beats import strip_input
from shared.model.rhythm.net import RhythmNet

HEAD_MODULES: tuple[str, ...] = ("rr", "strip_head")


class StripHead(nn.Module):
    """embedding (B, 2·width + rr_features) → strip logits (B, C): the reader's own `rr` and `strip_head`."""

    def __init__(self, model: RhythmNet) -> None:
        super().__init__()
        self.width = 2 * model.config.channels[-1]
        self.rr = model.rr
        self.strip_head = model.strip_head

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        pooled, features = embedding[:, : self.width], embedding[:, self.width:]
        return self.strip_head(torch.cat([pooled, self.rr(features)], dim=1))


def embed(model: RhythmNet, x: np.ndarray, beats: np.ndarray | None = None) -> np.ndarray:
    """One band-passed strip at `RHYTHM_FS` → its head input (float32): what the frozen body sees in it."""
    model.eval()
    signal, features = strip_input(x, beats)
    with torch.no_grad():
        h = model.context(model.blocks(model.stem(torch.from_numpy(signal)[None])))[0].T  # (F, C)
        weights = torch.softmax(model.attention(h).squeeze(-1), dim=0)
        attended = (weights[:, None] * h).sum(dim=0)
        return torch.cat([attended, h.mean(dim=0), torch.from_numpy(features)]).numpy().astype(np.float32)


def embed_all(model: RhythmNet, strips: Sequence[np.ndarray], beats: Sequence[np.ndarray | None]) -> np.ndarray:
    return np.stack([embed(model, x, b) for x, b in zip(strips, beats, strict=True)])


def head_vector(model: RhythmNet) -> np.ndarray:
    """The federated parameters, flat (float32), in `StripHead.parameters()` order."""
    return torch.cat([p.detach().reshape(-1) for p in StripHead(model).parameters()]).numpy().copy()


def install(model: RhythmNet, vector: np.ndarray) -> None:
    """Write a head vector into the reader (body untouched)."""
    params = list(StripHead(model).parameters())
    sizes = [p.numel() for p in params]
    if len(vector) != sum(sizes):
        raise ValueError(f"head vector has {len(vector)} values, the head {sum(sizes)}")
    with torch.no_grad():
        for p, chunk in zip(params, np.split(np.asarray(vector, dtype=np.float32), np.cumsum(sizes)[:-1]),
                            strict=True):
            p.copy_(torch.from_numpy(chunk).reshape(p.shape))
