"""The rhythm reader's validation, as a regulator would ask for it: held-out and cross-database figures only.

    .venv/bin/python bench/rhythm.py                       # everything (≈ 3 h here on 2 cores)
    .venv/bin/python bench/rhythm.py --parts cv,cross      # some parts; trained models are reused
    .venv/bin/python bench/rhythm.py --quick               # a smoke run: tiny subsets, 1 epoch (figures meaningless)

Every model is trained on some people and scored on others (`shared.model.rhythm.splits`: by person,
stratified); its temperature and thresholds come from a validation split of its own training side.

* **cv** — five folds over the people of all three databases at once. CinC 2017: each recording read by
  the model of the fold that held it out → AF F1 and mean F1 over N, A, O (the acceptance figures).
  MIT-BIH: VT onset strips and VT-free strips of held-out records → `events_vt`. Also, as diagnostics,
  held-out MIT-BIH 30 s AF and VFDB 10 s VT/VF figures.
* **cross** — leave one database out: trained without MIT-BIH → MIT-BIH 30 s AF Se/Sp; without VFDB →
  VFDB 10 s VT/VF Se; without CinC → CinC F1.
* **loro** — VFDB leave-one-record-out: the model trained without VFDB, fine-tuned on the other 21
  records, reads the left-out record's 10 s segments → VT/VF vs the rest Se/Sp.
* **final** — the shipped model (`bench/results/rhythm.pt`): trained on everyone, its card holding the
  data, the folds and the held-out figures above.
* **speed** — the phone's analysis of a 30 s strip with the shipped reader on (`bench/phone_analysis.py`'s
  strips), p50.

Writes `bench/results/rhythm.json` (keys merged across runs of different parts) and prints a table.
Trained models are kept under `var/rhythm/models/` and reused unless `--retrain`.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from bench._common import RESULTS, ROOT, percentile
from shared.analysis.strip import Analysis, measure_strip, with_reader
from shared.ecg.annotations import load_annotations
from shared.model.rhythm import protocol
from shared.model.rhythm.corpus import DATABASES, Recording, load_corpus
from shared.model.rhythm.labels import CLASSES, RHYTHM_TO_CINC, VF, VT
from shared.model.rhythm.preprocess import RHYTHM_FS
from shared.model.rhythm.reader import RhythmReader, Thresholds
from shared.model.rhythm.splits import assign_folds, split, validation_split
from shared.model.rhythm.train import TrainConfig, fit, predict_strips, tune_class_bias
from shared.settings import Settings

log = logging.getLogger("bench.rhythm")

PARTS = ("cv", "cross", "loro", "final", "speed")
FOLDS = 5
FOLD_SEED = 0
WORK = ROOT / "var" / "rhythm"
SEGMENT_S = {"mitdb": 30.0, "vfdb": 10.0}
DEFAULT_CANDIDATE = 0.3
CANDIDATE_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


# --- strips ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Strip:
    """One strip the product reads: where it comes from and what it truly is."""

    database: str
    record: str
    start_s: float
    end_s: float | None  # None: the whole recording
    kind: str  # cinc | segment | onset | negative
    label: str  # CinC label, or the segment's rhythm note, or "VT" / "none"
    run_start_s: float = 0.0
    run_fifth_s: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.database}/{self.record}/{self.start_s:g}/{self.end_s}"


@lru_cache(maxsize=64)
def _record(database: str, record: str) -> tuple[np.ndarray, float]:
    """Channel 0 of a record at its own rate, in mV: what a one-lead device would have sent."""
    import wfdb

    rec = wfdb.rdrecord(str(_data_dir() / database / record), channels=[0])
    return np.nan_to_num(np.asarray(rec.p_signal[:, 0], dtype=np.float64)), float(rec.fs)


def _data_dir() -> Path:
    d = Settings().data_dir
    if d is None:
        raise SystemExit("datasets not found: set CARDIOMESH_DATA_DIR (see ../shared/datasets/README.md)")
    return d


def samples(strip: Strip) -> tuple[np.ndarray, float]:
    x, fs = _record(strip.database, strip.record)
    if strip.end_s is None:
        return x, fs
    return x[round(strip.start_s * fs):round(strip.end_s * fs)], fs


def cinc_strips(records: Sequence[Recording]) -> list[Strip]:
    labels = {0: "N", 1: "A", 2: "O", 5: "~"}
    return [Strip("cinc2017", r.record, 0.0, None, "cinc", labels[int(r.label or 0)])
            for r in records if r.database == "cinc2017"]


def segment_strips(database: str, records: Sequence[str]) -> list[Strip]:
    out = []
    for rec in sorted(set(records)):
        ann = load_annotations(_data_dir() / database / rec)
        out += [Strip(database, rec, s.start_s, s.end_s, "segment", s.label)
                for s in protocol.segments(ann, SEGMENT_S[database])]
    return out


def onset_and_negative_strips(records: Sequence[str]) -> list[Strip]:
    out = []
    for rec in sorted(set(records)):
        ann = load_annotations(_data_dir() / "mitdb" / rec)
        out += [Strip("mitdb", rec, o.start_s, o.end_s, "onset", "VT", o.run_start_s, o.run_fifth_s)
                for o in protocol.onset_strips(ann)]
        out += [Strip("mitdb", rec, a, b, "negative", "none") for a, b in protocol.negative_strips(ann)]
    return out


def _records_of(recordings: Sequence[Recording], database: str) -> list[str]:
    return sorted({r.record for r in recordings if r.database == database})


# --- the product's reading ---------------------------------------------------------------------------
def _beat_model_version() -> str:
    """The shared beat model's file version: `measure_strip` depends on it, so its cache does too."""
    import hashlib

    from shared.analysis.ectopy import model_path

    path = model_path()
    if path is None or not path.exists():
        return "no-beat-model"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]

class Measured:
    """`measure_strip` once per strip (the rules and detectors do not depend on the reader), on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache: dict[str, Analysis] = {}
        if path.exists():
            with path.open("rb") as handle:
                self.cache = pickle.load(handle)
        self.dirty = 0

    def get(self, strip: Strip) -> Analysis:
        hit = self.cache.get(strip.key)
        if hit is None:
            x, fs = samples(strip)
            hit = self.cache[strip.key] = measure_strip(x, fs)
            self.dirty += 1
            if self.dirty >= 500:
                self.save()
        return hit

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with tmp.open("wb") as handle:
                pickle.dump(self.cache, handle, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(self.path)
            self.dirty = 0


@dataclass
class Row:
    strip: Strip
    rhythm: str
    events: list[tuple[str, float, float]] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    probabilities: dict[str, float] | None = None


def read(strips: Sequence[Strip], reader: RhythmReader | None, measured: Measured,
         progress: Callable[[int], None] | None = None) -> list[Row]:
    rows = []
    for i, strip in enumerate(strips):
        x, fs = samples(strip)
        a = with_reader(measured.get(strip), x, fs, reader)
        rows.append(Row(strip, a.rhythm, [(e.type, e.start_s, e.end_s) for e in a.events],
                        [c.rhythm for c in a.candidates], a.rhythm_probabilities))
        if progress is not None and (i + 1) % 200 == 0:
            progress(i + 1)
    measured.save()
    return rows


# --- training ----------------------------------------------------------------------------------------
def _candidate_threshold(reader: RhythmReader, valid: Sequence[Recording]) -> tuple[float, dict[str, Any]]:
    """The candidate threshold maximising Se + Sp of VT/VF on the validation recordings' 10 s segments.

    Reader-level (the candidate rule's own input): max of the strip's and the peak frame probability of VT
    and VF. Falls back to `DEFAULT_CANDIDATE` with fewer than 10 segments on either side.
    """
    n = int(10 * RHYTHM_FS)
    strips, truth = [], []
    for r in valid:
        if r.labels is None:
            continue
        for k in range(len(r.x) // n):
            lab = r.labels[k * n:(k + 1) * n]
            known = lab[lab >= 0]
            if len(known) < 0.9 * n:
                continue
            counts = np.bincount(known.astype(np.int64), minlength=len(CLASSES))
            top = int(np.argmax(counts))
            if counts[top] < 0.9 * n:
                continue
            strips.append(r.x[k * n:(k + 1) * n])
            truth.append(top in (VT, VF))
    t = np.array(truth, dtype=bool)
    if t.sum() < 10 or (~t).sum() < 10:
        return DEFAULT_CANDIDATE, {"segments": len(t), "positives": int(t.sum()), "chosen": "default"}
    outs = predict_strips(reader.model, strips, reader.temperature)
    from shared.analysis.reading import peak_probability

    score = np.array([max(o.probabilities[VT], o.probabilities[VF], peak_probability(o.frame_probabilities[:, VT]),
                          peak_probability(o.frame_probabilities[:, VF])) for o in outs])
    best = max(CANDIDATE_GRID, key=lambda th: (np.mean(score[t] >= th) + np.mean(score[~t] < th), th))
    return float(best), {"segments": len(t), "positives": int(t.sum()), "chosen": "youden",
                         "se": round(float(np.mean(score[t] >= best)), 4),
                         "sp": round(float(np.mean(score[~t] < best)), 4)}


def train_model(name: str, train: Sequence[Recording], config: TrainConfig, *, retrain: bool,
                init: RhythmReader | None = None) -> RhythmReader:
    """Train (or load a model trained earlier under `name`) with calibration and thresholds from its own
    validation split."""
    path = WORK / "models" / f"{name}.pt"
    if path.exists() and not retrain:
        log.info("model %s: reusing %s", name, path)
        return RhythmReader.load(path)
    fit_side, valid = validation_split(train)
    started = time.perf_counter()
    result = fit(fit_side, valid, config, init=None if init is None else init.model,
                 progress=lambda row: log.info("%s %s", name, row))
    reader = RhythmReader(result.model, result.temperature)
    candidate, how = _candidate_threshold(reader, valid)
    whole = [r for r in valid if r.label is not None]
    bias = np.zeros(len(CLASSES))
    if whole:
        outs = predict_strips(reader.model, [r.x for r in whole], reader.temperature, beats=[r.beats for r in whole])
        bias = tune_class_bias(np.array([o.probabilities for o in outs]), np.array([r.label for r in whole]))
    reader.thresholds = Thresholds(candidate=candidate, class_bias=tuple(float(b) for b in bias))
    groups = {db: len({r.group for r in fit_side if r.database == db}) for db in DATABASES}
    reader.card = {
        "name": name, "trained_groups": groups,
        "validation_groups": {db: len({r.group for r in valid if r.database == db}) for db in DATABASES},
        "config": config.to_dict(), "temperature": result.temperature, "candidate_threshold": how,
        "class_bias": [round(float(b), 2) for b in bias], "bias_tuned_on": len(whole),
        "history": result.history, "seconds": round(time.perf_counter() - started, 1),
    }
    reader.save(path)
    return RhythmReader.load(path)


# --- parts -------------------------------------------------------------------------------------------
def _cinc_rows_to_scores(rows: Sequence[Row]) -> dict[str, Any]:
    return protocol.cinc_scores([r.strip.label for r in rows], [RHYTHM_TO_CINC[r.rhythm] for r in rows])


def _af_segments(rows: Sequence[Row]) -> dict[str, Any]:
    seg = [r for r in rows if r.strip.kind == "segment" and r.strip.label != "mixed"]
    out = protocol.binary_scores([r.strip.label in protocol.AF_LABELS for r in seg],
                                 [r.rhythm in ("af", "afl") for r in seg])
    out["segments"] = len(seg)
    out["inconclusive"] = sum(r.rhythm == "inconclusive" for r in seg)
    return out


def _vtvf_segments(rows: Sequence[Row]) -> dict[str, Any]:
    seg = [r for r in rows if r.strip.kind == "segment" and r.strip.label != "mixed"]
    truth = [r.strip.label in protocol.VTVF_LABELS for r in seg]
    reported = [protocol.vtvf_reported(r.rhythm, [e[0] for e in r.events], r.candidates) for r in seg]
    out = protocol.binary_scores(truth, reported)
    vf = [r for r, rep in zip(seg, reported, strict=True) if r.strip.label in ("VFL", "VF", "VFIB")]
    out["vf_segments"] = len(vf)
    out["vf_without_candidate"] = sum(not protocol.vtvf_reported(r.rhythm, [e[0] for e in r.events], r.candidates)
                                      for r in vf)
    out["segments"] = len(seg)
    out["mixed"] = sum(r.strip.kind == "segment" and r.strip.label == "mixed" for r in rows)
    return out


def _events_vt(rows: Sequence[Row], *, by_set: bool = True) -> dict[str, Any]:
    """VT events on held-out MIT-BIH strips; also per beat-model set: the analysis's beat model (which picks
    some of the beats the VT event counts, and gives the rules' VT reading) was trained on DS1."""
    pos = [r for r in rows if r.strip.kind == "onset"]
    neg = [r for r in rows if r.strip.kind == "negative"]
    found = [protocol.vt_event_found(r.events, r.strip.run_start_s, r.strip.run_fifth_s) for r in pos]
    false = [any(e[0] == "vt" for e in r.events) for r in neg]
    out: dict[str, Any] = {
        "se": round(float(np.mean(found)), 4) if found else None, "runs": len(pos), "found": int(sum(found)),
        "false_rate": round(float(np.mean(false)), 4) if false else None, "strips_without": len(neg),
        "false_strips": int(sum(false)),
        "missed": [f"{r.strip.record}@{r.strip.start_s:.0f}s" for r, f in zip(pos, found, strict=True) if not f]}
    if by_set:
        from shared.model.data import DS1, DS2

        for name, records in (("DS1", DS1), ("DS2", DS2)):
            part = _events_vt([r for r in rows if r.strip.record in records], by_set=False)
            out[f"beat_model_{name}"] = {k: part[k] for k in ("se", "runs", "found", "false_rate", "strips_without")}
    return out


def part_cv(corpus: list[Recording], config: TrainConfig, measured: Measured, retrain: bool) -> dict[str, Any]:
    folds = assign_folds(corpus, FOLDS, seed=FOLD_SEED)
    cinc_rows: list[Row] = []
    mit_rows: list[Row] = []
    vf_rows: list[Row] = []
    per_fold = []
    for k in range(FOLDS):
        train, test = split(corpus, folds, k)
        reader = train_model(f"cv{k}", train, config, retrain=retrain)
        c = read(cinc_strips(test), reader, measured)
        mit = _records_of(test, "mitdb")
        m = read(segment_strips("mitdb", mit) + onset_and_negative_strips(mit), reader, measured)
        v = read(segment_strips("vfdb", _records_of(test, "vfdb")), reader, measured)
        scores = _cinc_rows_to_scores(c)
        per_fold.append({"fold": k, "af_f1": scores["af_f1"], "macro_f1_nao": scores["macro_f1_nao"],
                         "recordings": scores["recordings"], "mitdb_records": mit,
                         "vfdb_records": _records_of(test, "vfdb"), "temperature": reader.temperature,
                         "candidate_threshold": reader.thresholds.candidate})
        log.info("fold %d: %s", k, per_fold[-1])
        cinc_rows += c
        mit_rows += m
        vf_rows += v
    cv = _cinc_rows_to_scores(cinc_rows)
    cv["folds"] = per_fold
    return {"cinc2017_cv": cv, "events_vt": _events_vt(mit_rows),
            "diagnostics_5fold": {"mitdb_af_30s": _af_segments(mit_rows), "vfdb_vtvf_10s": _vtvf_segments(vf_rows)}}


def _without(corpus: list[Recording], database: str) -> list[Recording]:
    return [r for r in corpus if r.database != database]


def part_cross(corpus: list[Recording], config: TrainConfig, measured: Measured, retrain: bool) -> dict[str, Any]:
    no_mit = train_model("no-mitdb", _without(corpus, "mitdb"), config, retrain=retrain)
    mit = _records_of(corpus, "mitdb")
    mit_rows = read(segment_strips("mitdb", mit), no_mit, measured)
    no_vf = train_model("no-vfdb", _without(corpus, "vfdb"), config, retrain=retrain)
    vf_rows = read(segment_strips("vfdb", _records_of(corpus, "vfdb")), no_vf, measured)
    no_cinc = train_model("no-cinc2017", _without(corpus, "cinc2017"), config, retrain=retrain)
    cinc_rows = read(cinc_strips(corpus), no_cinc, measured)
    af = _af_segments(mit_rows)
    vtvf = _vtvf_segments(vf_rows)
    cinc = _cinc_rows_to_scores(cinc_rows)
    return {"cross_db": {"mitdb_af_se": af["se"], "mitdb_af_sp": af["sp"], "vfdb_vtvf_se": vtvf["se"],
                         "cinc_macro_f1_nao": cinc["macro_f1_nao"], "cinc_af_f1": cinc["af_f1"],
                         "detail": {"mitdb_af_30s": af, "vfdb_vtvf_10s": vtvf, "cinc2017": cinc}}}


def part_loro(corpus: list[Recording], config: TrainConfig, measured: Measured, retrain: bool,
              ft_epochs: int) -> dict[str, Any]:
    base = train_model("no-vfdb", _without(corpus, "vfdb"), config, retrain=False)
    others = _without(corpus, "vfdb")
    rng = np.random.default_rng(0)
    cinc = [r for r in others if r.database == "cinc2017"]
    rehearsal = [r for r in others if r.database != "cinc2017"] + \
        [cinc[i] for i in rng.choice(len(cinc), size=min(600, len(cinc)), replace=False)]
    vf_records = _records_of(corpus, "vfdb")
    ft = TrainConfig(epochs=ft_epochs, lr=config.lr / 3, long_crops_per_epoch=config.long_crops_per_epoch,
                     crop_s=config.crop_s, seed=config.seed)
    rows: list[Row] = []
    per_record = []
    for rec in vf_records:
        train = rehearsal + [r for r in corpus if r.database == "vfdb" and r.record != rec]
        reader = train_model(f"loro-{rec}", train, ft, retrain=retrain, init=base)
        r = read(segment_strips("vfdb", [rec]), reader, measured)
        s = _vtvf_segments(r)
        per_record.append({"record": rec, "se": s["se"], "sp": s["sp"], "tp": s["tp"], "fn": s["fn"], "tn": s["tn"],
                           "fp": s["fp"], "vf_without_candidate": s["vf_without_candidate"]})
        log.info("loro %s: %s", rec, per_record[-1])
        rows += r
    total = _vtvf_segments(rows)
    return {"vfdb_loro": {"se": total["se"], "sp": total["sp"], "detail": total, "records": per_record}}


def part_final(corpus: list[Recording], config: TrainConfig, retrain: bool, results: dict[str, Any],
               out: Path) -> dict[str, Any]:
    reader = train_model("final", corpus, config, retrain=retrain)
    reader.card.update({
        "what": "CardioMesh rhythm reader: single-lead strip (any rate, lead, scale, 5-60 s) -> sinus / af / other / "
                "vt / vf / noise, strip and per 0.16 s frame, calibrated",
        "data": {db: {"recordings": sum(r.database == db for r in corpus),
                      "people": len({r.group for r in corpus if r.database == db})} for db in DATABASES},
        "folds": f"{FOLDS} folds by person, stratified (shared.model.rhythm.splits, seed {FOLD_SEED})",
        "held_out": {k: results[k] for k in ("cinc2017_cv", "vfdb_loro", "cross_db", "events_vt") if k in results},
        "measured_by": "bench/rhythm.py",
    })
    for key in ("cinc2017_cv", "cross_db", "vfdb_loro"):
        if key in reader.card["held_out"] and isinstance(reader.card["held_out"][key], dict):
            reader.card["held_out"][key] = {k: v for k, v in reader.card["held_out"][key].items()
                                            if k not in ("detail", "records", "confusion")}
    reader.save(out)
    return {"final": {"file": str(out.relative_to(ROOT)), "version": RhythmReader.load(out).version,
                      "temperature": reader.temperature, "thresholds": reader.thresholds.to_dict()}}


def part_speed(model: Path) -> dict[str, Any]:
    from bench.phone_analysis import strips as phone_strips
    from shared.analysis.strip import analyze_strip

    reader = RhythmReader.load(model)
    signals, source = phone_strips()
    analyze_strip(signals[0].samples_mv, signals[0].fs, reader=reader)  # warm-up
    times = []
    for s in signals:
        t0 = time.perf_counter()
        analyze_strip(s.samples_mv, s.fs, reader=reader)
        times.append((time.perf_counter() - t0) * 1000)
    read_times = []
    for s in signals:
        t0 = time.perf_counter()
        reader.read(s.samples_mv, s.fs)
        read_times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(percentile(times, 50), 1), "speed": {
        "strips": len(times), "source": source, "p95_ms": round(percentile(times, 95), 1),
        "reader_alone_p50_ms": round(percentile(read_times, 50), 1), "threads": torch.get_num_threads()}}


# --- main --------------------------------------------------------------------------------------------
def table(results: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| figure (held out) | value | target |", "|---|---|---|"]
    cv = results.get("cinc2017_cv", {})
    lines += [f"| CinC 2017 5-fold CV: AF F1 | {f(cv.get('af_f1'))} | ≥ 0.88 |",
              f"| CinC 2017 5-fold CV: mean F1 N, A, O | {f(cv.get('macro_f1_nao'))} | ≥ 0.80 |"]
    lo = results.get("vfdb_loro", {})
    lines += [f"| VFDB LORO 10 s: VT/VF Se | {f(lo.get('se'))} | ≥ 0.95 |",
              f"| VFDB LORO 10 s: VT/VF Sp | {f(lo.get('sp'))} | ≥ 0.95 |"]
    cr = results.get("cross_db", {})
    lines += [f"| without MIT-BIH → MIT-BIH 30 s AF Se | {f(cr.get('mitdb_af_se'))} | ≥ 0.90 |",
              f"| without MIT-BIH → MIT-BIH 30 s AF Sp | {f(cr.get('mitdb_af_sp'))} | ≥ 0.95 |",
              f"| without VFDB → VFDB 10 s VT/VF Se | {f(cr.get('vfdb_vtvf_se'))} | ≥ 0.90 |",
              f"| without CinC → CinC mean F1 N, A, O | {f(cr.get('cinc_macro_f1_nao'))} | (reported) |"]
    ev = results.get("events_vt", {})
    lines += [f"| MIT-BIH VT runs ≥ 5 beats found (16 s onset strips) | {f(ev.get('se'))} "
              f"({ev.get('found', '—')}/{ev.get('runs', '—')}) | ≥ 0.90 |",
              f"| MIT-BIH strips without one, false VT event | {f(ev.get('false_rate'))} | ≤ 0.02 |",
              f"| phone analysis p50, 30 s strip, reader on (ms) | {f(results.get('p50_ms'))} | ≤ 100 |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--ft-epochs", type=int, default=2, help="fine-tuning epochs per LORO record")
    parser.add_argument("--retrain", action="store_true", help="train again even where a model is kept")
    parser.add_argument("--quick", action="store_true", help="smoke run on small subsets (figures meaningless)")
    parser.add_argument("--out", type=Path, default=RESULTS / "rhythm.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    global WORK
    config = TrainConfig(epochs=args.epochs)
    corpus = load_corpus() if any(p != "speed" for p in parts) else []
    if args.quick:
        WORK = ROOT / "var" / "rhythm-quick"
        config = TrainConfig(epochs=1, long_crops_per_epoch=128)
        rng = np.random.default_rng(0)
        cinc = [r for r in corpus if r.database == "cinc2017"]
        keep = {cinc[i].record for i in rng.choice(len(cinc), 300, replace=False)}
        keep |= {"203", "205", "210", "223", "201", "100", "105", "119", "418", "426", "427", "611", "605", "420"}
        corpus = [r for r in corpus if r.record in keep]
    measured = Measured(WORK / f"measured-{_beat_model_version()}.pkl")
    model_out = WORK / "rhythm.pt" if args.quick else RESULTS / "rhythm.pt"
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() and not args.quick else {}
    started = time.perf_counter()
    for part in parts:
        t0 = time.perf_counter()
        if part == "cv":
            results.update(part_cv(corpus, config, measured, args.retrain))
        elif part == "cross":
            results.update(part_cross(corpus, config, measured, args.retrain))
        elif part == "loro":
            results.update(part_loro(corpus, config, measured, args.retrain, 1 if args.quick else args.ft_epochs))
        elif part == "final":
            results.update(part_final(corpus, config, args.retrain, results, model_out))
        elif part == "speed":
            results.update(part_speed(model_out))
        results.setdefault("seconds", {})[part] = round(time.perf_counter() - t0, 1)
        if not args.quick:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
