"""The beat classifier: a compact 1D-CNN on the waveform joined with an MLP on the RR/context features.

Why GroupNorm and no BatchNorm: federated averaging averages parameters, but BatchNorm also carries
running mean/variance buffers that are not parameters, differ per client (each wearer's signal) and
have no sound average; GroupNorm normalises each beat on its own, so the model is fully described by
its parameters and behaves identically in training and inference (batch of 1 on the watch).

Why the context branch is a separate MLP concatenated late: prematurity (RR relative to the wearer's
rhythm) is what separates S from N across patients; giving it its own path stops the waveform
features from drowning it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from shared.model.features import N_CONTEXT, WAVE_CHANNELS, WAVE_LEN


@dataclass(frozen=True)
class NetConfig:
    """Architecture (saved with the weights so a file rebuilds its own model)."""

    wave_channels: int = WAVE_CHANNELS
    wave_len: int = WAVE_LEN
    n_context: int = N_CONTEXT
    channels: tuple[int, ...] = (8, 16, 24)
    kernel: int = 7
    groups: int = 4
    pooled: int = 4  # positions kept by the final adaptive pooling (keeps coarse timing of the waveform)
    context_hidden: int = 24
    hidden: int = 32
    n_classes: int = 4
    dropout: float = 0.1

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> NetConfig:
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


class BeatNet(nn.Module):
    """(wave (B, C, L), context (B, K)) → logits (B, 4) for N, S, V, F."""

    def __init__(self, config: NetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or NetConfig()
        layers: list[nn.Module] = []
        c_in = cfg.wave_channels
        for i, c in enumerate(cfg.channels):
            layers += [
                nn.Conv1d(c_in, c, cfg.kernel, padding=cfg.kernel // 2),
                nn.GroupNorm(min(cfg.groups, c), c),
                nn.ReLU(),
            ]
            if i < len(cfg.channels) - 1:
                layers.append(nn.MaxPool1d(2))
            c_in = c
        layers.append(nn.AdaptiveAvgPool1d(cfg.pooled))
        self.conv = nn.Sequential(*layers)
        self.context = nn.Sequential(
            nn.Linear(cfg.n_context, cfg.context_hidden), nn.ReLU(),
            nn.Linear(cfg.context_hidden, cfg.context_hidden), nn.ReLU(),
        )
        self.trunk = nn.Sequential(
            nn.Linear(c_in * cfg.pooled + cfg.context_hidden, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
        )
        self.head = nn.Linear(cfg.hidden, cfg.n_classes)

    def forward(self, wave: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        w = self.conv(wave).flatten(1)
        c = self.context(context)
        return self.head(self.trunk(torch.cat([w, c], dim=1)))


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def abnormal_score(logits: torch.Tensor) -> torch.Tensor:
    """1 − P(N): how abnormal (S, V or F) a beat looks; the score behind AUROC and alert thresholds."""
    return 1.0 - torch.softmax(logits, dim=-1)[..., 0]
