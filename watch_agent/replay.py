"""Where a watch's ECG comes from: a WFDB record, a CSV file, or synthetic ECG, at the model's rate.

`open_source("mitdb/203")`, `open_source("path/to/rec.hea")`, `open_source("data.csv")` or
`open_source("synthetic:tachycardia,pause")` → a `Signal` resampled to `MODEL_FS`. `Replay` then
hands it out chunk by chunk, paced against the wall clock at `speed` × real time, and lets a drill
splice an episode into the live stream.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.ecg.signal import MODEL_FS, Signal, resample
from shared.ecg.sources import SyntheticEpisode, load_csv, load_wfdb, synthetic
from shared.settings import Settings

SYNTHETIC_KINDS = ("tachycardia", "bradycardia", "pause", "irregular")


class SourceError(ValueError):
    """A replay source that cannot be opened; the message says why and what would work."""


def open_source(spec: str, settings: Settings, *, seed: int = 0, start_s: float = 0.0) -> tuple[Signal, str]:
    """Resolve a source spec to a Signal at MODEL_FS and a reference string for evaluation."""
    if spec.startswith("synthetic"):
        kinds = [k for k in spec.partition(":")[2].split(",") if k]
        unknown = [k for k in kinds if k not in SYNTHETIC_KINDS]
        if unknown:
            raise SourceError(f"unknown synthetic episode(s) {unknown}; choose from {', '.join(SYNTHETIC_KINDS)}")
        episodes = [SyntheticEpisode(kind=k, start_s=40.0 + 60.0 * i, duration_s=20.0)  # type: ignore[arg-type]
                    for i, k in enumerate(kinds)]
        duration = 40.0 + 60.0 * max(len(kinds), 1) + 20.0
        return synthetic(duration, MODEL_FS, episodes=episodes, seed=seed), spec
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        if not path.exists():
            raise SourceError(f"CSV file not found: {path}")
        return resample(load_csv(path), MODEL_FS), path.name
    record = path.with_suffix("") if path.suffix.lower() in {".hea", ".dat", ".atr"} else path
    if not record.with_suffix(".hea").exists() and settings.data_dir is not None:
        record = settings.data_dir / record
    if not record.with_suffix(".hea").exists():
        raise SourceError(
            f"no WFDB record {spec!r} (looked for {record}.hea); give a path, a record like mitdb/203 with "
            "CARDIOMESH_DATA_DIR set, a .csv file, or synthetic[:kind,...]"
        )
    signal = load_wfdb(record, start_s=start_s)
    return resample(signal, MODEL_FS), f"{record.parent.name}/{record.name}"


@dataclass(frozen=True, slots=True)
class Chunk:
    samples_mv: np.ndarray
    t0_s: float  # stream time of the first sample
    drill_trace: str | None  # set while the chunk comes from a drill splice


class Replay:
    """Chunks of a signal in stream order, looping, with drill splices taking precedence."""

    def __init__(self, signal: Signal, *, chunk_s: float = 0.2, speed: float = 1.0, loop: bool = True) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.signal = signal
        self.fs = signal.fs
        self.chunk = max(1, round(chunk_s * self.fs))
        self.speed = speed
        self.loop = loop
        self._pos = 0
        self._emitted = 0  # samples emitted so far = stream clock
        self._splices: deque[tuple[np.ndarray, str]] = deque()
        self._splice_not_before = 0  # stream sample from which the next splice may start
        self._wall0: float | None = None

    @property
    def stream_s(self) -> float:
        return self._emitted / self.fs

    def splice(self, samples_mv: np.ndarray, trace_id: str, *, not_before_s: float = 0.0) -> None:
        """Play `samples_mv` (a drill) next, once the stream clock has reached `not_before_s`."""
        self._splices.append((np.asarray(samples_mv, dtype=np.float64), trace_id))
        self._splice_not_before = max(self._splice_not_before, round(not_before_s * self.fs))

    def next_chunk(self) -> Chunk | None:
        t0 = self.stream_s
        if self._splices and self._emitted >= self._splice_not_before:
            samples, trace = self._splices[0]
            out, rest = samples[: self.chunk], samples[self.chunk:]
            if len(rest):
                self._splices[0] = (rest, trace)
            else:
                self._splices.popleft()
            self._emitted += len(out)
            return Chunk(out, t0, trace)
        n = len(self.signal.samples_mv)
        if self._pos >= n:
            if not self.loop:
                return None
            self._pos = 0
        take = self.chunk
        if self._splices:  # a held splice starts exactly on time
            take = max(1, min(take, self._splice_not_before - self._emitted))
        out = self.signal.samples_mv[self._pos: self._pos + take]
        self._pos += len(out)
        self._emitted += len(out)
        return Chunk(out, t0, None)

    def wait_s(self) -> float:
        """Seconds to sleep so that the stream runs at `speed` × real time."""
        now = time.monotonic()
        if self._wall0 is None:
            self._wall0 = now
        return max(0.0, self._wall0 + self.stream_s / self.speed - now)
