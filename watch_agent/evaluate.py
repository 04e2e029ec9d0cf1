"""Measure the baseline detector on the whole MIT-BIH Arrhythmia DB: per-episode sensitivity and false alerts.

    python -m watch_agent.evaluate [--records 100 203 ...] [--json PATH] [--detector baseline]

Each record (lead MLII, else lead 0) is resampled to the watch rate and streamed in 1 s chunks through a
fresh detector. Annotations are read only afterwards, to score:
- an annotated episode (same-rhythm episodes less than `MERGE_GAP_S` apart are merged) is *detected* if an
  alert of a matching kind (or, in the "any" column, any alert) is raised between its onset and its
  end + `GRACE_S`;
- an alert is *false* if its span [onset, detected] touches no abnormal episode widened by ±`GRACE_S`;
  false alerts per hour are over the time outside those widened episodes.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

from shared.ecg.annotations import RhythmInterval, load_annotations
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import load_wfdb
from shared.settings import Settings
from watch_agent.detector import DetectorEvent, make_detector

log = logging.getLogger(__name__)

GRACE_S = 10.0
MERGE_GAP_S = 10.0
CHUNK_S = 1.0
NORMAL_RHYTHMS = frozenset({"N"})
#: Which alert kinds count as the right answer for each annotated rhythm (None: only "any alert" is scored).
MATCHING: dict[str, frozenset[str] | None] = {
    "VT": frozenset({"wide_complex_run", "tachycardia"}),
    "VFL": frozenset({"wide_complex_run", "tachycardia", "pause"}),
    "AFIB": frozenset({"irregular_rhythm"}),
    "AFL": frozenset({"irregular_rhythm", "tachycardia"}),
    "SVTA": frozenset({"tachycardia"}),
    "SBR": frozenset({"bradycardia"}),
}


@dataclass(frozen=True)
class RecordResult:
    record: str
    duration_s: float
    events: list[dict[str, Any]]
    episodes: list[dict[str, Any]]  # rhythm, start_s, end_s, matched, any
    false_alerts: list[dict[str, Any]]
    normal_s: float
    seconds: float


def _merge(intervals: list[RhythmInterval]) -> list[RhythmInterval]:
    merged: list[RhythmInterval] = []
    for iv in sorted(intervals, key=lambda r: r.start_s):
        last = merged[-1] if merged else None
        same = [m for m in reversed(merged) if m.rhythm == iv.rhythm]
        if same and iv.start_s - same[0].end_s <= MERGE_GAP_S and last is not None:
            idx = merged.index(same[0])
            merged[idx] = RhythmInterval(iv.rhythm, same[0].start_s, iv.end_s)
        else:
            merged.append(iv)
    return merged


def _union_length(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    total, end = 0.0, lo
    for a, b in sorted((max(lo, a), min(hi, b)) for a, b in spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def evaluate_record(args: tuple[str, str]) -> RecordResult:
    """Stream one record through a fresh detector, then score its alerts against the annotations."""
    path, detector_name = args
    started = time.perf_counter()
    signal = resample(load_wfdb(path), MODEL_FS)
    detector = make_detector(detector_name, MODEL_FS)
    events: list[DetectorEvent] = []
    step = int(CHUNK_S * MODEL_FS)
    x = signal.samples_mv
    for i in range(0, len(x), step):
        events.extend(detector.feed(x[i:i + step]))
    elapsed = time.perf_counter() - started
    ann = load_annotations(path)
    abnormal = [r for r in ann.rhythms if r.rhythm not in NORMAL_RHYTHMS]
    episodes = []
    for ep in _merge(abnormal):
        in_window = [e for e in events if ep.start_s <= e.detected_s <= ep.end_s + GRACE_S]
        kinds = MATCHING.get(ep.rhythm)
        episodes.append({
            "rhythm": ep.rhythm, "start_s": round(ep.start_s, 2), "end_s": round(ep.end_s, 2),
            "matched": None if kinds is None else any(e.kind in kinds for e in in_window),
            "any": bool(in_window),
        })
    widened = [(r.start_s - GRACE_S, r.end_s + GRACE_S) for r in abnormal]
    false = [
        asdict(e) for e in events
        if not any(e.onset_s <= b and e.detected_s >= a for a, b in widened)
    ]
    normal_s = signal.duration_s - _union_length(widened, 0.0, signal.duration_s)
    return RecordResult(
        Path(path).name, signal.duration_s, [asdict(e) for e in events], episodes, false, normal_s, elapsed
    )


def summarise(results: list[RecordResult]) -> dict[str, Any]:
    """Per-rhythm episode sensitivity (matching kind and any alert) and false alerts per hour."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"episodes": 0, "matched": 0, "any": 0, "scored": 0})
    for res in results:
        for ep in res.episodes:
            row = per[ep["rhythm"]]
            row["episodes"] += 1
            row["any"] += int(ep["any"])
            if ep["matched"] is not None:
                row["scored"] += 1
                row["matched"] += int(ep["matched"])
    records_with: dict[str, set[str]] = defaultdict(set)
    records_hit: dict[str, set[str]] = defaultdict(set)
    for res in results:
        for ep in res.episodes:
            records_with[ep["rhythm"]].add(res.record)
            if ep["matched"]:
                records_hit[ep["rhythm"]].add(res.record)
    normal_h = sum(r.normal_s for r in results) / 3600
    false_by_kind: dict[str, int] = defaultdict(int)
    for res in results:
        for e in res.false_alerts:
            false_by_kind[e["kind"]] += 1
    n_false = sum(false_by_kind.values())
    return {
        "records": len(results),
        "hours": round(sum(r.duration_s for r in results) / 3600, 2),
        "normal_hours": round(normal_h, 2),
        "alerts": sum(len(r.events) for r in results),
        "false_alerts": n_false,
        "false_alerts_per_hour": round(n_false / normal_h, 2) if normal_h else None,
        "false_alerts_by_kind": dict(false_by_kind),
        "false_alerts_by_record": {r.record: len(r.false_alerts) for r in results if r.false_alerts},
        "episodes": {
            k: {
                **v,
                "sensitivity_matched": round(v["matched"] / v["scored"], 3) if v["scored"] else None,
                "sensitivity_any": round(v["any"] / v["episodes"], 3) if v["episodes"] else None,
                "records": len(records_with[k]),
                "records_matched": len(records_hit[k]),
            }
            for k, v in sorted(per.items())
        },
        "detector_seconds": round(sum(r.seconds for r in results), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", nargs="*", help="record names (default: all in RECORDS)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--detector", default="baseline")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    mitdb = Settings().mitdb_dir
    if mitdb is None:
        parser.error("MIT-BIH not found: set CARDIOMESH_DATA_DIR to a folder holding mitdb/")
    names = args.records or (mitdb / "RECORDS").read_text().split()
    jobs = [(str(mitdb / n), args.detector) for n in names]
    with Pool(args.processes) as pool:
        results = pool.map(evaluate_record, jobs)
    summary = summarise(results)
    print(f"{summary['records']} records, {summary['hours']} h; {summary['alerts']} alerts")
    print(f"{'rhythm':8} {'episodes':>8} {'matched':>12} {'any alert':>12} {'records matched':>16}")
    for rhythm, row in summary["episodes"].items():
        matched = f"{row['matched']}/{row['scored']}" if row["scored"] else "—"
        rec = f"{row['records_matched']}/{row['records']}" if row["scored"] else "—"
        print(f"{rhythm:8} {row['episodes']:8d} {matched:>12} {row['any']:>5}/{row['episodes']:<6} {rec:>16}")
    print(f"false alerts: {summary['false_alerts']} over {summary['normal_hours']} h of normal rhythm "
          f"= {summary['false_alerts_per_hour']}/h; by kind {summary['false_alerts_by_kind']}")
    print(f"by record {summary['false_alerts_by_record']}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "records": [asdict(r) for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
