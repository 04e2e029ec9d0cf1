"""The development corpus of the rhythm reader: every recording of CinC 2017, MIT-BIH and VFDB, at one rate.

A `Recording` is one lead of one person's recording at `RHYTHM_FS`, band-passed (not yet normalised:
that is per strip), with either one label for the whole recording (CinC 2017) or a label per sample
from the rhythm annotations (MIT-BIH, VFDB). Both leads of a two-lead record are two recordings of the
same `group`: splits are by group, so a person's leads never sit on both sides of a split. MIT-BIH 201
and 202 are one person (the database's own notes) and share a group.

Annotations are labels only; the reader never sees them. Arrays are cached per database as one .npz
under `$CARDIOMESH_STATE_DIR/cache/rhythm/<CACHE_SCHEMA>/`.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import wfdb

from shared.ecg.annotations import load_annotations
from shared.model.rhythm.beats import detect_beats
from shared.model.rhythm.labels import CINC, IGNORE, rhythm_label
from shared.model.rhythm.preprocess import RHYTHM_FS, to_model_rate
from shared.settings import Settings

log = logging.getLogger(__name__)

DATABASES: tuple[str, ...] = ("cinc2017", "mitdb", "vfdb")
CACHE_SCHEMA = "r2"
SAME_PERSON: dict[str, str] = {"mitdb/202": "mitdb/201"}  # MIT-BIH: 201 and 202 come from one subject


@dataclass(frozen=True)
class Recording:
    """One lead of one recording at `RHYTHM_FS`: `label` (whole recording) or `labels` (per sample)."""

    database: str
    record: str
    lead: str
    x: np.ndarray  # float32, band-passed, at RHYTHM_FS
    label: int | None = None
    labels: np.ndarray | None = None  # int8 per sample, IGNORE where unannotated
    beats: np.ndarray | None = None  # R peaks (samples at RHYTHM_FS) from the reader's own detector

    @property
    def group(self) -> str:
        """The person: what a split keeps on one side."""
        key = f"{self.database}/{self.record}"
        return SAME_PERSON.get(key, key)

    @property
    def duration_s(self) -> float:
        return len(self.x) / RHYTHM_FS


def _records(directory: Path) -> list[str]:
    listing = directory / "RECORDS"
    if listing.exists():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return sorted(p.stem for p in directory.glob("*.hea"))


def _cinc_labels(directory: Path) -> dict[str, int]:
    with (directory / "REFERENCE.csv").open(newline="") as handle:
        return {row[0]: CINC[row[1].strip()] for row in csv.reader(handle) if len(row) >= 2 and row[1].strip() in CINC}


def _sample_labels(database: str, path: Path, n_out: int) -> np.ndarray:
    """Per-sample class at `RHYTHM_FS` from the record's rhythm annotations."""
    labels = np.full(n_out, IGNORE, dtype=np.int8)
    for interval in load_annotations(path).rhythms:
        lo = max(0, round(interval.start_s * RHYTHM_FS))
        hi = min(n_out, round(interval.end_s * RHYTHM_FS))
        labels[lo:hi] = rhythm_label(database, interval.rhythm)
    return labels


def _load(args: tuple[str, str, str, int | None]) -> list[Recording]:
    database, directory, record, label = args
    path = Path(directory) / record
    rec = wfdb.rdrecord(str(path))
    fs = float(rec.fs)
    names = list(rec.sig_name or [])
    out: list[Recording] = []
    for ch in range(rec.p_signal.shape[1]):
        x = to_model_rate(rec.p_signal[:, ch], fs)
        lead = names[ch] if ch < len(names) else f"lead{ch}"
        beats = detect_beats(x)
        if database == "cinc2017":
            out.append(Recording(database, record, lead, x, label=label, beats=beats))
        else:
            out.append(Recording(database, record, f"{lead}#{ch}", x, labels=_sample_labels(database, path, len(x)),
                                 beats=beats))
    return out


def _cache_path(database: str) -> Path:
    return Settings().state_dir / "cache" / "rhythm" / CACHE_SCHEMA / f"{database}.npz"


def _save(path: Path, recordings: Sequence[Recording]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(r.x) for r in recordings], dtype=np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        x=np.concatenate([r.x for r in recordings]) if recordings else np.zeros(0, np.float32),
        labels=np.concatenate([r.labels if r.labels is not None else np.full(len(r.x), IGNORE, np.int8)
                               for r in recordings]) if recordings else np.zeros(0, np.int8),
        lengths=lengths,
        beats=np.concatenate([r.beats if r.beats is not None else np.zeros(0, np.int64) for r in recordings])
        if recordings else np.zeros(0, np.int64),
        n_beats=np.array([0 if r.beats is None else len(r.beats) for r in recordings], dtype=np.int64),
        label=np.array([IGNORE if r.label is None else r.label for r in recordings], dtype=np.int64),
        has_labels=np.array([r.labels is not None for r in recordings], dtype=bool),
        database=np.array([r.database for r in recordings]),
        record=np.array([r.record for r in recordings]),
        lead=np.array([r.lead for r in recordings]),
    )
    tmp.replace(path)


def _restore(path: Path) -> list[Recording]:
    with np.load(path) as z:
        offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
        beat_offsets = np.concatenate([[0], np.cumsum(z["n_beats"])])
        x, labels, beats = z["x"], z["labels"], z["beats"]
        out = []
        for i in range(len(z["lengths"])):
            lo, hi = offsets[i], offsets[i + 1]
            out.append(Recording(
                str(z["database"][i]), str(z["record"][i]), str(z["lead"][i]), x[lo:hi],
                label=None if z["label"][i] == IGNORE else int(z["label"][i]),
                labels=labels[lo:hi] if z["has_labels"][i] else None,
                beats=beats[beat_offsets[i]:beat_offsets[i + 1]],
            ))
    return out


def load_database(database: str, data_dir: Path | None = None, *, processes: int = 2,
                  records: Sequence[str] | None = None) -> list[Recording]:
    """Every recording (every lead) of one database, from the cache when it is there.

    `records` restricts to a subset (not cached). Raises FileNotFoundError when the database is absent.
    """
    if database not in DATABASES:
        raise ValueError(f"unknown database {database!r}; expected one of {DATABASES}")
    data_dir = data_dir or Settings().data_dir
    directory = None if data_dir is None else data_dir / database
    if directory is None or not directory.is_dir():
        raise FileNotFoundError(f"{database} not found under {data_dir} (set CARDIOMESH_DATA_DIR)")
    cache = _cache_path(database)
    if records is None and cache.exists():
        return _restore(cache)
    names = list(records) if records is not None else _records(directory)
    labels = _cinc_labels(directory) if database == "cinc2017" else {}
    if database == "cinc2017":
        names = [n for n in names if n in labels]
    jobs = [(database, str(directory), n, labels.get(n)) for n in names]
    log.info("reading %s: %d records", database, len(jobs))
    if processes > 1 and len(jobs) > 4:
        with get_context("spawn").Pool(processes) as pool:
            chunks = pool.map(_load, jobs, chunksize=16)
    else:
        chunks = [_load(j) for j in jobs]
    out = [r for chunk in chunks for r in chunk]
    if records is None:
        _save(cache, out)
    return out


def load_corpus(databases: Sequence[str] = DATABASES, data_dir: Path | None = None) -> list[Recording]:
    """Recordings of every database present (absent ones are logged and skipped)."""
    out: list[Recording] = []
    for db in databases:
        try:
            out += load_database(db, data_dir)
        except FileNotFoundError as exc:
            log.warning("%s", exc)
    return out
