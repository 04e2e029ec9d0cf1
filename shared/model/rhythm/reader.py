"""The rhythm reader at inference: one saved file, the same reading on the watch, the phone and the edge.

A file is a `torch.save` of {"format", "config", "state_dict", "temperature", "thresholds", "card"}:
the architecture, the calibrated temperature and the event thresholds (all chosen on training folds)
travel with the weights, and `card` says what it was trained on and what it scored held out.

`active_reader()` is the reader a process should use: `CARDIOMESH_RHYTHM_MODEL` names a file (`off`,
`none` or empty disables it), else `bench/results/rhythm.pt`. A missing or unreadable file is logged
once and the analysis carries on with its rules alone (and says so in its notes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.model.rhythm.beats import strip_input
from shared.model.rhythm.labels import CLASSES
from shared.model.rhythm.net import DOWNSAMPLE, RhythmNet, RhythmNetConfig
from shared.model.rhythm.preprocess import RHYTHM_FS, to_model_rate

log = logging.getLogger(__name__)

FORMAT = "cardiomesh-rhythmnet/1"
MODEL_ENV = "CARDIOMESH_RHYTHM_MODEL"
DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "bench" / "results" / "rhythm.pt"
DISABLED = frozenset({"", "off", "none", "0", "false"})
MIN_STRIP_S = 2.0  # below this the network has too few frames to say anything


class RhythmModelError(ValueError):
    """The file is missing, unreadable or not a CardioMesh rhythm reader."""


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds. `candidate` and `class_bias` are chosen on a validation split of the training
    side (`bench/rhythm.py`); the frame thresholds are declared at 0.5, not tuned (too few VT runs to tune on)."""

    candidate: float = 0.2  # a strip or frame probability of VT/VF at or above this makes a candidate
    vt_beat: float = 0.5  # a beat counts as ventricular (for VT events) when p(vt)+p(vf) at it reaches this
    vf_frame: float = 0.5  # frames at or above this, for ≥ 4 s, are a VF event
    af_frame: float = 0.5  # frames at or above this, long enough, are an AF episode
    class_bias: tuple[float, ...] = (0.0,) * len(CLASSES)  # decision offsets on log-probabilities

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Thresholds:
        d = dict(d or {})
        bias = tuple(float(v) for v in d.pop("class_bias", ())) or (0.0,) * len(CLASSES)
        if len(bias) != len(CLASSES):
            raise ValueError(f"class_bias has {len(bias)} values, the reader {len(CLASSES)} classes")
        known = {k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known, class_bias=bias)

    def to_dict(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "vt_beat": self.vt_beat, "vf_frame": self.vf_frame,
                "af_frame": self.af_frame, "class_bias": list(self.class_bias)}


@dataclass(frozen=True)
class RhythmReading:
    """Calibrated probabilities for the whole strip and for each 0.16 s frame of it."""

    probabilities: dict[str, float]
    frames: np.ndarray  # (F, C) calibrated frame probabilities, columns in CLASSES order
    frame_s: float
    model: str  # file version (short hash), for provenance
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def label(self) -> str:
        """The named class: calibrated probabilities with the decision offsets chosen on training folds."""
        bias = dict(zip(CLASSES, self.thresholds.class_bias, strict=True))
        return max(self.probabilities, key=lambda k: np.log(max(self.probabilities[k], 1e-9)) + bias.get(k, 0.0))

    def frame_column(self, name: str) -> np.ndarray:
        return self.frames[:, CLASSES.index(name)] if len(self.frames) else np.zeros(0)

    def frame_at(self, t_s: np.ndarray) -> np.ndarray:
        """Frame probabilities (len(t), C) at times `t_s` (seconds from the strip start)."""
        if len(self.frames) == 0:
            return np.zeros((len(t_s), len(CLASSES)))
        idx = np.clip((np.asarray(t_s) / self.frame_s).astype(int), 0, len(self.frames) - 1)
        return self.frames[idx]


class RhythmReader:
    """A trained `RhythmNet` with its temperature and thresholds; `read` takes mV at any rate."""

    def __init__(self, model: RhythmNet, temperature: float = 1.0, thresholds: Thresholds | None = None,
                 card: dict[str, Any] | None = None, version: str = "unsaved") -> None:
        self.model = model.eval()
        self.temperature = float(temperature)
        self.thresholds = thresholds or Thresholds()
        self.card = dict(card or {})
        self.version = version

    def read_prepared(self, x: np.ndarray, beats: np.ndarray | None = None) -> RhythmReading:
        """A strip already at `RHYTHM_FS` and band-passed (`to_model_rate`)."""
        if len(x) < MIN_STRIP_S * RHYTHM_FS:
            raise ValueError(f"strip too short for the rhythm reader ({len(x) / RHYTHM_FS:.1f} s)")
        signal, features = strip_input(x, beats)
        with torch.no_grad():
            strip, frames = self.model(torch.from_numpy(signal)[None], torch.from_numpy(features)[None])
            p = torch.softmax(strip[0] / self.temperature, dim=0).numpy()
            pf = torch.softmax(frames[0] / self.temperature, dim=1).numpy()
        return RhythmReading({c: round(float(v), 4) for c, v in zip(CLASSES, p, strict=True)}, pf,
                             DOWNSAMPLE / RHYTHM_FS, self.version, self.thresholds)

    def read(self, samples_mv: np.ndarray, fs: float, beats_s: np.ndarray | None = None) -> RhythmReading:
        """mV at `fs` Hz; `beats_s` (R peaks in seconds) when the caller has already found the beats."""
        beats = None if beats_s is None else np.round(np.asarray(beats_s) * RHYTHM_FS).astype(np.int64)
        return self.read_prepared(to_model_rate(samples_mv, fs), beats)

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # JSON-clean (numpy scalars become floats): the file loads with torch's weights_only=True
        card = json.loads(json.dumps(self.card, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
        state = {k: v.detach().cpu().float() for k, v in self.model.state_dict().items()}
        torch.save({"format": FORMAT, "config": self.model.config.to_dict(), "state_dict": state,
                    "temperature": self.temperature, "thresholds": self.thresholds.to_dict(), "card": card},
                   path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> RhythmReader:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RhythmModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
        try:
            import io

            blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise RhythmModelError(f"{path}: not a torch file ({type(exc).__name__})") from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise RhythmModelError(f"{path}: not a CardioMesh rhythm reader (format {FORMAT!r} expected)")
        try:
            model = RhythmNet(RhythmNetConfig.from_dict(blob["config"]))
            model.load_state_dict(blob["state_dict"])
        except Exception as exc:
            raise RhythmModelError(f"{path}: weights do not fit the saved architecture ({exc})") from None
        version = hashlib.sha256(raw).hexdigest()[:12]
        try:
            thresholds = Thresholds.from_dict(blob.get("thresholds"))
        except (TypeError, ValueError) as exc:
            raise RhythmModelError(f"{path}: bad thresholds ({exc})") from None
        return cls(model, float(blob.get("temperature", 1.0)), thresholds, blob.get("card") or {}, version)


_WARNED: set[str] = set()


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> RhythmReader | None:
    try:
        reader = RhythmReader.load(path)
    except RhythmModelError as exc:
        log.warning("rhythm reader: %s; rhythm from the rules alone", exc)
        return None
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    log.info("rhythm reader: %s (version %s)", path, reader.version)
    return reader


def model_path() -> Path | None:
    """`CARDIOMESH_RHYTHM_MODEL`, else the default file; None when disabled."""
    value = os.environ.get(MODEL_ENV)
    if value is None:
        return DEFAULT_MODEL
    return None if value.strip().lower() in DISABLED else Path(value).expanduser()


def active_reader() -> RhythmReader | None:
    """The reader this process uses, loaded once per file version; None when absent or disabled."""
    path = model_path()
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            log.warning("rhythm reader: no model at %s; rhythm from the rules alone", path)
        return None
    return _load(str(path.resolve()), mtime)
