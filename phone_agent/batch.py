"""Analyse ECG files offline: WFDB records, CSV and EDF, one or many, or every record in a directory.

The implementation behind `cardiomesh analyze`. Loading picks one lead (MLII, else one named like ECG,
else the first) at the file's own rate; the window (`start_s`, `seconds`) keeps long records quick.
A file that cannot be read or analysed becomes an error row; the others are still processed.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.analysis.strip import Analysis, analyze_strip
from shared.ecg.signal import Signal
from shared.ecg.sources import load_csv, load_wfdb

log = logging.getLogger(__name__)

WFDB_DATA_SUFFIXES = (".dat", ".mat")
SUFFIXES = (".hea", ".csv", ".edf", *WFDB_DATA_SUFFIXES)
PREFERRED_LEADS = ("MLII", "II", "ECG", "ECG1", "LEAD II")


class LoadError(ValueError):
    """A file that is not a readable ECG record (message is one line, for the user)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    record: str
    path: Path
    analysis: Analysis | None = None
    lead: str = ""
    fs: float = 0.0
    start_s: float = 0.0
    error: str | None = None


def _wfdb_record(path: Path) -> Path | None:
    """The record path (no extension) if `path` names a WFDB record by its .hea, data file or bare name."""
    if path.suffix == ".hea" and path.is_file():
        return path.with_suffix("")
    if path.suffix in WFDB_DATA_SUFFIXES and path.with_suffix(".hea").is_file():
        return path.with_suffix("")
    if path.suffix not in SUFFIXES and path.with_name(path.name + ".hea").is_file():
        return path
    return None


def _load_single_column_csv(path: Path, fs: float | None) -> Signal:
    if fs is None:
        raise LoadError(f"{path}: a single-column CSV has no time column; pass --fs")
    values: list[float] = []
    with path.open(newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if not row or not row[0].strip():
                continue
            try:
                values.append(float(row[0]))
            except ValueError:
                if lineno == 1:
                    continue  # a header
                raise LoadError(f"{path}:{lineno}: expected a number, got {row[0]!r}") from None
    if len(values) < 2:
        raise LoadError(f"{path}: need at least 2 samples, got {len(values)}")
    return Signal(np.asarray(values, dtype=float), float(fs), "csv", path.stem)


def _load_csv(path: Path, fs: float | None) -> Signal:
    with path.open(newline="") as handle:
        first = next(csv.reader(handle), None)
    if first is None:
        raise LoadError(f"{path}: empty file")
    columns = [c.strip().lower() for c in first]
    if "time_s" in columns and "mv" in columns:
        try:
            return load_csv(path, fs)
        except ValueError as exc:
            raise LoadError(str(exc)) from None
    if len(columns) == 1:
        return _load_single_column_csv(path, fs)
    raise LoadError(f"{path}: expected columns 'time_s,mv' or a single column of mV, got {first!r}")


def _load_edf(path: Path, start_s: float, seconds: float | None) -> Signal:
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise LoadError(f"{path}: not a readable EDF file ({str(exc).strip()[:80]})") from None
    try:
        labels = [label.strip() for label in reader.getSignalLabels()]
        if not labels:
            raise LoadError(f"{path}: EDF file has no signals")
        upper = [label.upper() for label in labels]
        channel = next((upper.index(p) for p in PREFERRED_LEADS if p in upper),
                       next((i for i, label in enumerate(upper) if "ECG" in label or "EKG" in label), 0))
        fs = float(reader.getSampleFrequency(channel))
        n = int(reader.getNSamples()[channel])
        start = min(n, max(0, round(start_s * fs)))
        count = n - start if seconds is None else min(n - start, round(seconds * fs))
        if count <= 0:
            raise LoadError(f"{path}: window starts after the end ({n / fs:.1f} s long)")
        samples = np.asarray(reader.readSignal(channel, start=start, n=count), dtype=float)
        unit = reader.getPhysicalDimension(channel).strip().lower()
    finally:
        reader.close()
    scale = {"uv": 1e-3, "µv": 1e-3, "v": 1e3}.get(unit, 1.0)
    return Signal(samples * scale, fs, labels[channel], path.stem)


def load_record(path: Path, *, fs: float | None = None, start_s: float = 0.0,
                seconds: float | None = 30.0) -> Signal:
    """One lead of the file's window [start_s, start_s + seconds) at the file's own rate."""
    record = _wfdb_record(path)
    end_s = None if seconds is None else start_s + seconds
    if record is not None:
        try:
            return load_wfdb(record, start_s=start_s, end_s=end_s)
        except Exception as exc:  # wfdb raises assorted errors on malformed headers/data
            raise LoadError(f"{path}: not a readable WFDB record ({str(exc).strip()[:100]})") from None
    if not path.is_file():
        raise LoadError(f"{path}: no such file or WFDB record")
    suffix = path.suffix.lower()
    if suffix == ".edf":
        return _load_edf(path, start_s, seconds)
    if suffix == ".csv":
        signal = _load_csv(path, fs)
        window = signal.slice_s(start_s, end_s)
        if len(window.samples_mv) == 0:
            raise LoadError(f"{path}: window starts after the end ({signal.duration_s:.1f} s long)")
        return window
    raise LoadError(f"{path}: unsupported file type {path.suffix or '(none)'} (use WFDB .hea/.dat/.mat, .csv, .edf)")


def discover(paths: Iterable[Path]) -> Iterator[Path]:
    """Each record once: files as given; for a directory, its WFDB headers, CSV and EDF files (sorted)."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                key = child.with_suffix("") if child.suffix in (".hea", *WFDB_DATA_SUFFIXES) else child
                if child.suffix.lower() in (".hea", ".csv", ".edf") and key not in seen:
                    seen.add(key)
                    yield child
            continue
        key = _wfdb_record(path) or path
        if key not in seen:
            seen.add(key)
            yield path


def record_name(path: Path) -> str:
    return path.stem if path.suffix in SUFFIXES else path.name


def analyze_path(path: Path, *, fs: float | None = None, start_s: float = 0.0,
                 seconds: float | None = 30.0) -> Outcome:
    try:
        signal = load_record(path, fs=fs, start_s=start_s, seconds=seconds)
        result = analyze_strip(signal.samples_mv, signal.fs)
    except LoadError as exc:
        return Outcome(record_name(path), path, error=str(exc))
    except Exception as exc:  # keep the batch going; say what failed in one line
        log.exception("analysis failed", extra={"path": str(path)})
        return Outcome(record_name(path), path, error=f"{path}: {type(exc).__name__}: {str(exc)[:120]}")
    return Outcome(record_name(path), path, result, signal.lead, signal.fs, start_s)


def analyze_paths(paths: Iterable[Path], *, fs: float | None = None, start_s: float = 0.0,
                  seconds: float | None = 30.0,
                  progress: Callable[[int, Path], None] | None = None) -> Iterator[Outcome]:
    for i, path in enumerate(discover(paths), start=1):
        if progress is not None:
            progress(i, path)
        yield analyze_path(path, fs=fs, start_s=start_s, seconds=seconds)


def to_row(outcome: Outcome) -> dict[str, Any]:
    """The JSON line of one record."""
    a = outcome.analysis
    if a is None:
        return {"record": outcome.record, "error": outcome.error}
    return {
        "record": outcome.record, "rhythm": a.rhythm, "confidence": a.rhythm_confidence, "quality": a.quality,
        "quality_score": a.quality_score, "hr_bpm": a.hr_bpm, "hr_min_bpm": a.hr_min_bpm, "hr_max_bpm": a.hr_max_bpm,
        "pr_ms": a.pr_ms, "qrs_ms": a.qrs_ms, "qt_ms": a.qt_ms, "qtc_bazett_ms": a.qtc_bazett_ms,
        "qtc_fridericia_ms": a.qtc_fridericia_ms, "pr_beats": a.pr_beats, "qrs_beats": a.qrs_beats,
        "qt_beats": a.qt_beats, "n_beats": a.n_beats, "sdnn_ms": a.sdnn_ms, "rmssd_ms": a.rmssd_ms,
        "pauses": a.pauses, "max_rr_s": a.max_rr_s, "ectopic_beats": a.ectopic_beats,
        "ectopic_burden": a.ectopic_burden, "ventricular_run_beats": a.ventricular_run_beats,
        "hrv_freq": a.hrv_freq, "segment_quality": a.segment_quality, "notes": a.notes,
        "events": [e.to_dict() for e in a.events],
        "candidates": [{"rhythm": c.rhythm, "probability": c.probability, "source": c.source} for c in a.candidates],
        "rhythm_probabilities": a.rhythm_probabilities, "rules_rhythm": a.rules_rhythm, "reader": a.reader,
        "vt_run_beats": a.vt_run_beats,
        "lead": outcome.lead, "fs": outcome.fs, "start_s": outcome.start_s, "duration_s": round(a.duration_s, 2),
        "analysis_ms": round(a.analysis_ms, 1),
    }


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def summary_text(outcome: Outcome) -> str:
    """A few readable lines for one record."""
    a = outcome.analysis
    if a is None:
        return f"{outcome.record}: error: {outcome.error}"
    conf = "" if a.rhythm_confidence is None else f" (confidence {a.rhythm_confidence:.2f})"
    lines = [
        f"{outcome.record}: {a.rhythm}{conf}, quality {a.quality} — lead {outcome.lead}, {outcome.fs:g} Hz, "
        f"{a.duration_s:.0f} s from {outcome.start_s:g} s",
        f"  HR {_fmt(a.hr_bpm, 'bpm')} (min {_fmt(a.hr_min_bpm, 'bpm')}, max {_fmt(a.hr_max_bpm, 'bpm')}), "
        f"{a.n_beats} beats, SDNN {_fmt(a.sdnn_ms, 'ms')}, RMSSD {_fmt(a.rmssd_ms, 'ms')}",
        f"  PR {_fmt(a.pr_ms, 'ms')} [{a.pr_beats or 0}], QRS {_fmt(a.qrs_ms, 'ms')} [{a.qrs_beats or 0}], "
        f"QT {_fmt(a.qt_ms, 'ms')} [{a.qt_beats or 0}], QTc Bazett {_fmt(a.qtc_bazett_ms, 'ms')}, "
        f"Fridericia {_fmt(a.qtc_fridericia_ms, 'ms')}",
        f"  ectopic {a.ectopic_beats} ({(a.ectopic_burden or 0) * 100:.1f} %), longest ventricular run "
        f"{a.ventricular_run_beats}, pauses > 2 s {a.pauses}, segments {' '.join(a.segment_quality or [])}",
    ]
    if a.hrv_freq:
        lines.append("  HRV " + ", ".join(f"{k} {v:g}" for k, v in a.hrv_freq.items()))
    if a.rhythm_probabilities:
        top = sorted(a.rhythm_probabilities.items(), key=lambda kv: -kv[1])[:3]
        lines.append(f"  reader {a.reader}: " + ", ".join(f"{k} {v:.2f}" for k, v in top)
                     + f"; rules: {a.rules_rhythm}")
    for c in a.candidates:
        lines.append(f"  CANDIDATE: possible {c.rhythm} (p = {c.probability:.2f}, {c.source})")
    for e in a.events:
        rate = "" if e.hr_bpm is None else f", {e.hr_bpm:.0f} bpm"
        prob = "" if e.probability is None else f", p = {e.probability:.2f}"
        lines.append(f"  event {e.type}: {e.start_s:.1f}–{e.end_s:.1f} s, {e.beats} beats{rate}{prob}")
    lines += [f"  note: {note}" for note in a.notes]
    return "\n".join(lines)
