"""Per-record beat datasets from WFDB records (MIT-BIH): beats from the watch's own detector, labels from annotations.

Why beats come from `StreamingQrsDetector` and not from the annotations: on the watch the model only
ever sees beats its own detector found, with that detector's R-peak jitter, misses and extra beats.
Training and evaluating on annotation positions would measure a system that does not exist.

Pipeline per record: read lead MLII (lead 0 when a record has none), resample to `MODEL_FS`, stream
it in 1 s chunks through `StreamingQrsDetector` and `BeatFeaturizer`, then match each detected beat
to the nearest reference beat within `MATCH_S` = 150 ms (one-to-one: if two detections claim the
same reference beat the nearer keeps it). Labels (`y`):

* 0 N (N L R e j), 1 S (A a J S), 2 V (V E), 3 F (F) — the AAMI classes the model learns;
* `Q_LABEL` = 4: Q (/ f Q) and any other beat symbol (e.g. `?`) — excluded from training and from
  the 4-class metrics;
* `UNMATCHED` = −1: a detection with no reference beat within 150 ms — excluded from training; the
  4-class metrics also exclude them (they have no true class), the EC57 VEB/SVEB statistics count
  what the model calls them (an extra detection called V is a false VEB), and `detection_summary`
  reports how many there were.

Reference beats the detector missed are kept as per-class counts (`BeatSet.missed`): they are false
negatives in the EC57 statistics. Arrays are cached per record as .npz under
`$CARDIOMESH_STATE_DIR/cache/beats/<FEATURES_VERSION>-<CACHE_SCHEMA>/`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from shared.ecg.annotations import load_annotations
from shared.ecg.qrs import StreamingQrsDetector
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import load_wfdb
from shared.model.features import FEATURES_VERSION, N_CONTEXT, WAVE_CHANNELS, WAVE_LEN, BeatFeaturizer
from shared.settings import Settings

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("N", "S", "V", "F")
Q_LABEL = 4
UNMATCHED = -1
MATCH_S = 0.150
CHUNK_S = 1.0
#: Bump when the cached arrays change shape or meaning (not the features: those are FEATURES_VERSION).
CACHE_SCHEMA = "c2"

AAMI: dict[str, int] = {
    **dict.fromkeys("NLRej", 0), **dict.fromkeys("AaJS", 1), **dict.fromkeys("VE", 2), "F": 3,
    **dict.fromkeys("/fQ", Q_LABEL),
}

DS1: tuple[str, ...] = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201",
                        "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2: tuple[str, ...] = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213",
                        "214", "219", "221", "222", "228", "231", "232", "233", "234")
PACED: frozenset[str] = frozenset({"102", "104", "107", "217"})


def aami_label(symbol: str) -> int:
    """AAMI class index of a WFDB beat symbol; symbols outside N/S/V/F map to Q (excluded)."""
    return AAMI.get(symbol, Q_LABEL)


@dataclass(frozen=True)
class BeatSet:
    """The beats of one record (or several, concatenated) as arrays.

    `X_wave` (n, WAVE_CHANNELS, WAVE_LEN) float32, `X_rr` (n, N_CONTEXT) float32 (RR timing first, see
    `features.CONTEXT_NAMES`), `y` (n,) int64 labels (0–3, `Q_LABEL`, `UNMATCHED`), `sample` (n,) R-peak
    index at `MODEL_FS`, `record` the record name; `n_reference` the annotated beats in the record
    (for detection sensitivity); `missed` (4,) the reference N/S/V/F beats no detection matched (zeros
    where unknown: a `subset` of beats cannot tell which references were missed).
    """

    X_wave: np.ndarray
    X_rr: np.ndarray
    y: np.ndarray
    sample: np.ndarray
    record: str
    n_reference: int = 0
    missed: np.ndarray = field(default_factory=lambda: np.zeros(len(CLASSES), np.int64))

    def __len__(self) -> int:
        return len(self.y)

    @classmethod
    def window(cls, wave: np.ndarray, context: np.ndarray, samples: np.ndarray) -> BeatSet:
        """Featurised beats that are not a recording (a phone's strip, a watch's recent beats), unlabelled, as
        a set the record-relative models read as one wearer's."""
        return cls(X_wave=wave, X_rr=context, y=np.zeros(len(wave), dtype=np.int64), sample=samples, record="window")

    def labelled(self) -> BeatSet:
        """Only the beats with an N/S/V/F label (what training and the 4-class metrics use)."""
        keep = (self.y >= 0) & (self.y < Q_LABEL)
        return BeatSet(self.X_wave[keep], self.X_rr[keep], self.y[keep], self.sample[keep], self.record,
                       self.n_reference, self.missed)

    def subset(self, index: np.ndarray) -> BeatSet:
        return BeatSet(self.X_wave[index], self.X_rr[index], self.y[index], self.sample[index], self.record,
                       self.n_reference)


def empty_beatset(record: str = "") -> BeatSet:
    return BeatSet(np.zeros((0, WAVE_CHANNELS, WAVE_LEN), np.float32), np.zeros((0, N_CONTEXT), np.float32),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), record)


def concat(sets: Iterable[BeatSet], record: str = "+") -> BeatSet:
    """Concatenate several records' beats (order kept)."""
    items = list(sets)
    if not items:
        return empty_beatset(record)
    return BeatSet(
        np.concatenate([s.X_wave for s in items]), np.concatenate([s.X_rr for s in items]),
        np.concatenate([s.y for s in items]), np.concatenate([s.sample for s in items]), record,
        sum(s.n_reference for s in items), np.sum([s.missed for s in items], axis=0).astype(np.int64),
    )


def match_beats(detected_s: np.ndarray, reference_s: np.ndarray, tolerance_s: float = MATCH_S) -> np.ndarray:
    """Index into `reference_s` of each detection's nearest reference beat within tolerance, else −1.

    One-to-one: when two detections are nearest to the same reference beat, only the nearer keeps it.
    """
    detected_s = np.asarray(detected_s, dtype=float)
    reference_s = np.asarray(reference_s, dtype=float)
    out = np.full(len(detected_s), -1, dtype=np.int64)
    if len(detected_s) == 0 or len(reference_s) == 0:
        return out
    pos = np.searchsorted(reference_s, detected_s)
    left = np.clip(pos - 1, 0, len(reference_s) - 1)
    right = np.clip(pos, 0, len(reference_s) - 1)
    pick = np.where(np.abs(reference_s[left] - detected_s) <= np.abs(reference_s[right] - detected_s), left, right)
    dist = np.abs(reference_s[pick] - detected_s)
    ok = dist <= tolerance_s + 1e-9
    best: dict[int, int] = {}
    for i in np.flatnonzero(ok):
        j = int(pick[i])
        if j not in best or dist[i] < dist[best[j]]:
            best[j] = int(i)
    for ref_index, det_index in best.items():
        out[det_index] = ref_index
    return out


def stream_features(x_mv: np.ndarray, fs: float = MODEL_FS, chunk_s: float = CHUNK_S) -> list:
    """Stream a signal through the watch's QRS detector and the featurizer; every beat's `BeatFeatures`."""
    qrs = StreamingQrsDetector(fs)
    feat = BeatFeaturizer(fs)
    out = []
    step = max(1, round(chunk_s * fs))
    for i in range(0, len(x_mv), step):
        chunk = x_mv[i:i + step]
        feat.push_samples(chunk)
        for beat in qrs.feed(chunk):
            feat.push_beat(beat)
        out.extend(feat.pop_ready())
    out.extend(feat.flush())
    return out


def class_counts(labels: np.ndarray) -> np.ndarray:
    """How many of `labels` are N, S, V, F (Q and other labels left out)."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.bincount(labels[(labels >= 0) & (labels < len(CLASSES))], minlength=len(CLASSES)).astype(np.int64)


def record_beats(record_path: Path | str, *, start_s: float = 0.0, end_s: float | None = None) -> BeatSet:
    """Detect, featurise and label the beats of one WFDB record (path without extension); no cache."""
    path = Path(record_path)
    sig = resample(load_wfdb(path, start_s=start_s, end_s=end_s), MODEL_FS)
    rows = stream_features(sig.samples_mv, MODEL_FS)
    name = path.name
    ann = load_annotations(path)
    ref_t = ann.beat_times_s - start_s
    hi = np.inf if end_s is None else end_s - start_s
    in_window = (ref_t >= 0) & (ref_t < hi)
    ref_t = ref_t[in_window]
    ref_labels = np.array([aami_label(s) for s, k in zip(ann.beat_symbols, in_window, strict=True) if k],
                          dtype=np.int64)
    if not rows:  # the detector found nothing: every reference beat is a miss
        return replace(empty_beatset(name), n_reference=len(ref_t), missed=class_counts(ref_labels))
    samples = np.array([r.beat.sample for r in rows], dtype=np.int64)
    match = match_beats(samples / MODEL_FS, ref_t)
    y = np.where(match >= 0, ref_labels[np.maximum(match, 0)] if len(ref_labels) else UNMATCHED, UNMATCHED)
    found = np.zeros(len(ref_labels), dtype=bool)
    found[match[match >= 0]] = True
    missed = class_counts(ref_labels[~found])
    return BeatSet(
        np.stack([r.wave for r in rows]).astype(np.float32),
        np.stack([r.context for r in rows]).astype(np.float32),
        y.astype(np.int64), samples, name, len(ref_t), missed,
    )


def cache_dir(settings: Settings | None = None) -> Path:
    return (settings or Settings()).state_dir / "cache" / "beats" / f"{FEATURES_VERSION}-{CACHE_SCHEMA}"


def _cache_path(record_path: Path, directory: Path) -> Path:
    digest = hashlib.sha1(str(record_path.resolve().parent).encode()).hexdigest()[:8]
    return directory / f"{record_path.name}-{digest}.npz"


def cached_record_beats(record_path: Path | str, directory: Path | None = None) -> BeatSet:
    """`record_beats` of a whole record, read from / written to the .npz cache."""
    path = Path(record_path)
    directory = directory or cache_dir()
    file = _cache_path(path, directory)
    if file.exists():
        with np.load(file) as z:
            return BeatSet(z["X_wave"], z["X_rr"], z["y"], z["sample"], path.name, int(z["n_reference"]),
                           z["missed"])
    beats = record_beats(path)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, X_wave=beats.X_wave, X_rr=beats.X_rr, y=beats.y, sample=beats.sample,
                        n_reference=np.int64(beats.n_reference), missed=beats.missed)
    tmp.replace(file)
    log.info("cached %s: %d beats", path.name, len(beats))
    return beats


def _cached_worker(args: tuple[str, str]) -> BeatSet:
    return cached_record_beats(Path(args[0]), Path(args[1]))


def load_records(paths: Sequence[Path], *, processes: int = 2, directory: Path | None = None) -> dict[str, BeatSet]:
    """Beat sets of several records, building missing caches with `processes` worker processes."""
    directory = directory or cache_dir()
    missing = [p for p in paths if not _cache_path(p, directory).exists()]
    if len(missing) > 1 and processes > 1:
        log.info("building beat cache for %d records with %d processes", len(missing), processes)
        with get_context("spawn").Pool(processes) as pool:
            pool.map(_cached_worker, [(str(p), str(directory)) for p in missing])
    return {p.name: cached_record_beats(p, directory) for p in paths}


def load_split(split: str, mitdb_dir: Path | str, *, processes: int = 2) -> dict[str, BeatSet]:
    """DS1 or DS2 of the inter-patient protocol (paced records are in neither), record → BeatSet."""
    records = {"DS1": DS1, "DS2": DS2}.get(split.upper())
    if records is None:
        raise ValueError(f"unknown split {split!r}: choose DS1 or DS2")
    return load_records([Path(mitdb_dir) / r for r in records], processes=processes)


def detection_summary(sets: Iterable[BeatSet]) -> dict[str, int]:
    """How the watch's detector did against the references: matched, unmatched detections, missed beats."""
    items = list(sets)
    matched = int(sum(int(np.sum(s.y != UNMATCHED)) for s in items))
    return {
        "detected": int(sum(len(s) for s in items)),
        "matched": matched,
        "unmatched_detections": int(sum(int(np.sum(s.y == UNMATCHED)) for s in items)),
        "reference_beats": int(sum(s.n_reference for s in items)),
        "missed_reference_beats": int(sum(s.n_reference for s in items)) - matched,
        "q_beats": int(sum(int(np.sum(s.y == Q_LABEL)) for s in items)),
    }
