"""RhythmNet: a small convolutional-recurrent network that reads a strip as a whole and frame by frame.

Shape: residual 1-D convolutions downsample the 100 Hz input 16× to frames of 0.16 s; dilated
convolutions over the frames carry context across ≈ 10 s of strip (irregularity of AF is a property of
many beats, not of one); two heads read their output:

* **frame head** — class logits per frame: where in the strip VT, VF or AF sit (monitor events);
* **strip head** — attention pooling over the frames (plus their mean) → the strip's dominant rhythm.

Any strip length works (fully convolutional), and padded batches carry a mask. Why dilated convolutions
and not a recurrent layer: a bidirectional GRU over 188 frames took ≈ 16 ms per 30 s strip on this CPU
(one small step at a time), the convolutions take well under that for the same context.
GroupNorm, not BatchNorm: the model is fully described by its parameters (no running statistics), so
federated averaging of it is sound and a batch of one behaves as in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.model.rhythm.beats import N_RR_CHANNELS, N_RR_FEATURES
from shared.model.rhythm.labels import CLASSES

DOWNSAMPLE = 16  # input samples per frame


@dataclass(frozen=True)
class RhythmNetConfig:
    """Architecture, saved with the weights so a file rebuilds its own model."""

    channels: tuple[int, ...] = (16, 24, 32, 48, 64)  # stem, then one stride-2 block each
    kernel: int = 7
    groups: int = 4
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)  # frame-level context: ±(sum) frames ≈ ±5 s
    head_hidden: int = 64
    rr_channels: int = N_RR_CHANNELS  # beside the ECG: relative RR and ΔRR per sample (`beats.rr_channels`)
    rr_features: int = N_RR_FEATURES  # strip-level RR features into the strip head (`beats.rr_features`)
    rr_hidden: int = 32
    n_classes: int = len(CLASSES)
    dropout: float = 0.2

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["dilations"] = list(self.dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RhythmNetConfig:
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))  # type: ignore[arg-type]
        d["dilations"] = tuple(d.get("dilations", cls.dilations))  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


class _Block(nn.Module):
    """Two convolutions with a strided shortcut: halves the time axis."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=2, padding=pad, bias=False)
        self.norm1 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=pad, bias=False)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.skip(x))


class _Context(nn.Module):
    """A dilated residual convolution over frames (same length in and out)."""

    def __init__(self, channels: int, dilation: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm = nn.GroupNorm(min(groups, channels), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.norm(self.conv(x)))


class RhythmNet(nn.Module):
    """(x (B, 1 + rr_channels, T): normalised strip and RR channels; features (B, rr_features); mask (B, T)
    bool or None) → (strip logits (B, C), frame logits (B, F, C))."""

    def __init__(self, config: RhythmNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RhythmNetConfig()
        c0 = cfg.channels[0]
        self.stem = nn.Sequential(
            nn.Conv1d(1 + cfg.rr_channels, c0, cfg.kernel, padding=cfg.kernel // 2, bias=False),
            nn.GroupNorm(min(cfg.groups, c0), c0), nn.ReLU(),
        )
        blocks = [_Block(a, b, cfg.kernel, cfg.groups) for a, b in zip(cfg.channels[:-1], cfg.channels[1:],
                                                                         strict=True)]
        self.blocks = nn.Sequential(*blocks)
        self.downsample = 2 ** len(blocks)
        width = cfg.channels[-1]
        self.context = nn.Sequential(*[_Context(width, d, cfg.groups) for d in cfg.dilations])
        self.frame_head = nn.Linear(width, cfg.n_classes)
        self.attention = nn.Linear(width, 1)
        self.rr = nn.Sequential(nn.Linear(cfg.rr_features, cfg.rr_hidden), nn.ReLU())
        self.strip_head = nn.Sequential(
            nn.Linear(2 * width + cfg.rr_hidden, cfg.head_hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, cfg.n_classes),
        )

    def frame_mask(self, mask: torch.Tensor, n_frames: int) -> torch.Tensor:
        """Sample mask (B, T) → frame mask (B, F): a frame counts when its first sample is real."""
        idx = torch.arange(n_frames, device=mask.device) * self.downsample
        idx = idx.clamp(max=mask.shape[1] - 1)
        return mask[:, idx]

    def forward(self, x: torch.Tensor, features: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.context(self.blocks(self.stem(x)))  # (B, C, F)
        h = h.transpose(1, 2)  # (B, F, C)
        frames = self.frame_head(h)
        fmask = (torch.ones(h.shape[:2], dtype=torch.bool, device=h.device) if mask is None
                 else self.frame_mask(mask, h.shape[1]))
        score = self.attention(h).squeeze(-1).masked_fill(~fmask, float("-inf"))
        weights = torch.softmax(score, dim=1).unsqueeze(-1)
        attended = (weights * h).sum(dim=1)
        m = fmask.unsqueeze(-1).to(h.dtype)
        mean = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        strip = self.strip_head(torch.cat([attended, mean, self.rr(features)], dim=1))
        return strip, frames
