"""Reference annotations of WFDB records — ground truth for evaluation and tests, never detector input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

#: Annotation symbols that mark a beat (WFDB convention); the rest are rhythm/noise/comment marks.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


@dataclass(frozen=True)
class RhythmInterval:
    """An annotated rhythm (e.g. "VT", "AFIB", "N") from `start_s` until `end_s`."""

    rhythm: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Annotations:
    """Beat positions/labels and rhythm intervals of one record."""

    record: str
    fs: float
    beat_samples: np.ndarray
    beat_symbols: tuple[str, ...]
    rhythms: list[RhythmInterval] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def beat_times_s(self) -> np.ndarray:
        return self.beat_samples / self.fs

    def beats_between(self, start_s: float, end_s: float) -> np.ndarray:
        """Beat sample indices inside a window, relative to the window start, at the record's rate."""
        lo, hi = start_s * self.fs, end_s * self.fs
        mask = (self.beat_samples >= lo) & (self.beat_samples < hi)
        return self.beat_samples[mask] - round(lo)

    def episodes(self, rhythm: str) -> list[RhythmInterval]:
        return [r for r in self.rhythms if r.rhythm == rhythm]

    def rhythm_at(self, t_s: float) -> RhythmInterval | None:
        """The annotated rhythm interval holding time `t_s` (None before the first rhythm mark)."""
        return next((r for r in self.rhythms if r.start_s <= t_s < r.end_s), None)


def load_annotations(record: Path | str, extension: str = "atr") -> Annotations:
    """Read beats and rhythm changes (`+` marks with aux notes like "(VT") of a record."""
    path = str(record)
    header = wfdb.rdheader(path)
    ann = wfdb.rdann(path, extension)
    fs = float(header.fs)
    duration = float(header.sig_len or 0) / fs
    samples = np.asarray(ann.sample, dtype=np.int64)
    symbols = list(ann.symbol)
    aux = list(ann.aux_note or [""] * len(symbols))
    is_beat = np.array([s in BEAT_SYMBOLS for s in symbols], dtype=bool)
    rhythms: list[RhythmInterval] = []
    current: tuple[str, float] | None = None
    for sample, symbol, note in zip(samples, symbols, aux, strict=True):
        note = note.strip("\x00 ").strip()
        if symbol != "+" or not note.startswith("("):
            continue
        t = float(sample) / fs
        if current is not None and t > current[1]:
            rhythms.append(RhythmInterval(current[0], current[1], t))
        current = (note[1:], t)
    if current is not None and duration > current[1]:
        rhythms.append(RhythmInterval(current[0], current[1], duration))
    return Annotations(
        record=Path(path).name,
        fs=fs,
        beat_samples=samples[is_beat],
        beat_symbols=tuple(s for s, b in zip(symbols, is_beat, strict=True) if b),
        rhythms=rhythms,
        duration_s=duration,
    )
