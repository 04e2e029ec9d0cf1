"""Validate the strip analysis on the MIT-BIH Arrhythmia Database, cut into 30 s segments.

    python -m phone_agent.validate [--data DIR] [--seconds 30] [--records 201,203] [--out DIR]

Each segment is labelled by the annotated rhythm covering ≥ 90 % of it (others are "mixed", skipped),
analysed blind (annotations are never shown to the analysis), and scored: AF vs non-AF sensitivity
and specificity (inconclusive segments excluded, counted per class), VT run detection against annotated
runs of ≥ 3 ventricular beats at ≥ 100 bpm, and interval plausibility on normal-rhythm segments.
Also reads every annotated VT episode as the watch's alert strip would show it (`onset_strips`): from
10 s before the onset to 1.5 s after (the watch raises a wide-complex-run alert about three beats in), and
counts how many the phone dismisses as unusable or inconclusive and in how many it finds the run.
Writes `segments.jsonl` (one row per segment, with the rule features), `onsets.jsonl` and `summary.json`
to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from shared.analysis.strip import analyze_strip
from shared.ecg.annotations import Annotations, load_annotations
from shared.ecg.sources import load_wfdb
from shared.model.data import DS1, DS2

log = logging.getLogger(__name__)

COVERAGE = 0.9
NORMAL_BEATS = 0.95
V_SYMBOLS = frozenset("VE")  # AAMI V
ECTOPIC_SYMBOLS = frozenset("AaJSVEF")  # AAMI S, V, F
NORMAL_SYMBOLS = frozenset("NLRej")
ONSET_PRE_S = 10.0  # the watch's strip_pre_s
ONSET_POST_S = 1.5  # the watch alerts about three wide beats into a run
NORMAL_RANGES = {"pr_ms": (120.0, 200.0), "qrs_ms": (70.0, 110.0), "qtc_bazett_ms": (350.0, 460.0)}


def segment_label(ann: Annotations, t0: float, t1: float) -> str:
    """The annotated rhythm covering ≥ 90 % of [t0, t1), else "mixed"."""
    cover: defaultdict[str, float] = defaultdict(float)
    for r in ann.rhythms:
        overlap = min(r.end_s, t1) - max(r.start_s, t0)
        if overlap > 0:
            cover[r.rhythm] += overlap
    if not cover:
        return "mixed"
    rhythm, seconds = max(cover.items(), key=lambda item: item[1])
    return rhythm if seconds >= COVERAGE * (t1 - t0) else "mixed"


def annotated_vt_run(ann: Annotations, t0: float, t1: float) -> int:
    """Longest annotated run of consecutive V beats at ≥ 100 bpm inside the window."""
    times = ann.beat_times_s
    mask = (times >= t0) & (times < t1)
    symbols = [s for s, m in zip(ann.beat_symbols, mask, strict=True) if m]
    t = times[mask]
    best = run = 0
    for i, s in enumerate(symbols):
        run = run + 1 if s == "V" else 0
        if run >= 3 and 60.0 / float(np.median(np.diff(t[i - run + 1:i + 1]))) >= 100:
            best = max(best, run)
    return best


def validate_record(args: tuple[str, str, float]) -> list[dict[str, Any]]:
    directory, record, seconds = args
    path = Path(directory) / record
    ann = load_annotations(path)
    signal = load_wfdb(path)
    rows: list[dict[str, Any]] = []
    n_seg = int(signal.duration_s // seconds)
    for k in range(n_seg):
        t0, t1 = k * seconds, (k + 1) * seconds
        label = segment_label(ann, t0, t1)
        strip = signal.slice_s(t0, t1)
        result = analyze_strip(strip.samples_mv, strip.fs)
        in_window = (ann.beat_times_s >= t0) & (ann.beat_times_s < t1)
        symbols = [sym for sym, m in zip(ann.beat_symbols, in_window, strict=True) if m]
        rows.append({
            "record": record, "set": _beat_set(record), "start_s": t0, "label": label,
            "vt_run_annotated": annotated_vt_run(ann, t0, t1),
            "normal_beat_fraction": round(symbols.count("N") / len(symbols), 3) if symbols else 0.0,
            "rhythm": result.rhythm, "confidence": result.rhythm_confidence, "quality": result.quality,
            "hr_bpm": result.hr_bpm, "pr_ms": result.pr_ms, "qrs_ms": result.qrs_ms, "qt_ms": result.qt_ms,
            "qtc_bazett_ms": result.qtc_bazett_ms, "ectopic_beats": result.ectopic_beats,
            "ventricular_beats": int(np.sum(result.ventricular)), "n_beats": result.n_beats,
            "annotated_beats": sum(sym in ECTOPIC_SYMBOLS or sym in NORMAL_SYMBOLS for sym in symbols),
            "v_annotated": sum(sym in V_SYMBOLS for sym in symbols),
            "ectopic_annotated": sum(sym in ECTOPIC_SYMBOLS for sym in symbols), "ectopy_method": result.ectopy_method,
            "vt_run_detected": result.features.longest_vt_run if result.features else 0,
            "features": asdict(result.features) if result.features else None,
            "analysis_ms": round(result.analysis_ms, 1), "lead": signal.lead,
        })
    log.info("record done", extra={"record": record, "segments": n_seg})
    return rows


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _beat_set(record: str) -> str:
    """DS1 (the shared beat model's training records), DS2 (held out from it), or paced."""
    return "DS1" if record in DS1 else "DS2" if record in DS2 else "paced"


def validate_onsets(args: tuple[str, str]) -> list[dict[str, Any]]:
    """Every annotated VT episode of one record as an alert strip: 10 s before the onset to 1.5 s after."""
    directory, record = args
    path = Path(directory) / record
    rows: list[dict[str, Any]] = []
    for episode in load_annotations(path).episodes("VT"):
        if episode.start_s < ONSET_PRE_S:
            continue
        strip = load_wfdb(path, start_s=episode.start_s - ONSET_PRE_S, end_s=episode.start_s + ONSET_POST_S)
        result = analyze_strip(strip.samples_mv, strip.fs)
        rows.append({"record": record, "set": _beat_set(record), "onset_s": round(episode.start_s, 2),
                     "quality": result.quality, "segment_quality": result.segment_quality,
                     "rhythm": result.rhythm, "run_beats": result.vt_run_beats or 0})
    return rows


def onset_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "strips": len(rows),
        "unusable": sum(r["quality"] == "unusable" for r in rows),
        "inconclusive": sum(r["rhythm"] == "inconclusive" for r in rows),
        "run_found": sum(r["run_beats"] >= 3 for r in rows),
        "rhythm": dict(Counter(r["rhythm"] for r in rows)),
    }


def vt_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    vt_pos = [r for r in rows if r["vt_run_annotated"] >= 3]
    vt_neg = [r for r in rows if r["vt_run_annotated"] == 0 and r["rhythm"] != "inconclusive"]
    vt_seg = [r for r in rows if r["label"] == "VT"]
    return {
        "segments_with_annotated_run": len(vt_pos),
        "run_detected": _ratio(sum(r["vt_run_detected"] >= 3 for r in vt_pos), len(vt_pos)),
        "segments_without_run": len(vt_neg),
        "false_run_rate": _ratio(sum(r["vt_run_detected"] >= 3 for r in vt_neg), len(vt_neg)),
        "vt_labelled_segments": len(vt_seg),
        "vt_labelled_called_vt": sum(r["rhythm"] == "vt" for r in vt_seg),
        "vt_called_outside_vt_runs": sum(r["rhythm"] == "vt" for r in vt_neg),
    }


def ectopy_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-segment beat counts against the annotations (segments that are not inconclusive, with beats)."""
    read = [r for r in rows if r["rhythm"] != "inconclusive" and r.get("annotated_beats")]
    with_v = [r for r in read if r["v_annotated"] >= 1]
    without = [r for r in read if r["ectopic_annotated"] == 0]
    err = [abs(r["ectopic_beats"] / max(r["n_beats"], 1) - r["ectopic_annotated"] / r["annotated_beats"])
           for r in read]
    return {
        "segments": len(read),
        "v_annotated": sum(r["v_annotated"] for r in read),
        "v_reported": sum(r["ventricular_beats"] for r in read),
        "ectopic_annotated": sum(r["ectopic_annotated"] for r in read),
        "ectopic_reported": sum(r["ectopic_beats"] or 0 for r in read),
        "segments_with_v_any_v_reported": _ratio(sum(r["ventricular_beats"] >= 1 for r in with_v), len(with_v)),
        "segments_with_v": len(with_v),
        "segments_without_ectopy_any_reported": _ratio(sum((r["ectopic_beats"] or 0) >= 1 for r in without),
                                                       len(without)),
        "segments_without_ectopy": len(without),
        "burden_abs_error_median": round(float(np.median(err)), 4) if err else None,
        "burden_abs_error_p90": round(float(np.percentile(err, 90)), 4) if err else None,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AF Se/Sp, VT run detection, interval plausibility and per-class outcomes from segment rows."""
    labelled = [r for r in rows if r["label"] != "mixed"]
    af = [r for r in labelled if r["label"] == "AFIB"]
    non_af = [r for r in labelled if r["label"] != "AFIB"]
    af_read = [r for r in af if r["rhythm"] != "inconclusive"]
    non_af_read = [r for r in non_af if r["rhythm"] != "inconclusive"]
    tp = sum(r["rhythm"] == "af" for r in af_read)
    fp = sum(r["rhythm"] == "af" for r in non_af_read)
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for r in labelled:
        per_class[r["label"]][r["rhythm"]] += 1
    fp_by_class = Counter(r["label"] for r in non_af_read if r["rhythm"] == "af")
    # normal rhythm *and* normal conduction (≥ 95 % beats annotated N): bundle-branch block and paced
    # records have normal rhythm labels but QRS widths that are rightly outside the normal range
    normal = [r for r in labelled if r["label"] == "N" and r["rhythm"] != "inconclusive"
              and r["normal_beat_fraction"] >= NORMAL_BEATS]
    plausibility = {}
    for key, (lo, hi) in NORMAL_RANGES.items():
        values = [r[key] for r in normal if r[key] is not None]
        plausibility[key] = {
            "range": [lo, hi], "segments_measured": len(values), "segments": len(normal),
            "within_range_fraction": _ratio(sum(lo <= v <= hi for v in values), len(values)),
            "median": round(float(np.median(values)), 1) if values else None,
        }
    times = [r["analysis_ms"] for r in rows]
    return {
        "segments": len(rows), "labelled": len(labelled), "mixed": len(rows) - len(labelled),
        "af": {
            "af_segments": len(af), "af_inconclusive": len(af) - len(af_read),
            "non_af_segments": len(non_af), "non_af_inconclusive": len(non_af) - len(non_af_read),
            "sensitivity": _ratio(tp, len(af_read)), "specificity": _ratio(len(non_af_read) - fp, len(non_af_read)),
            "true_positive": tp, "false_positive": fp, "false_positive_by_class": dict(fp_by_class),
        },
        "vt": vt_summary(rows),
        "vt_by_set": {name: vt_summary([r for r in rows if r.get("set") == name]) for name in ("DS1", "DS2")},
        "ectopy": ectopy_summary(rows) if rows and "v_annotated" in rows[0] else None,
        "ectopy_by_set": {name: ectopy_summary([r for r in rows if r.get("set") == name]) for name in ("DS1", "DS2")}
        if rows and "v_annotated" in rows[0] else None,
        "ectopy_method": dict(Counter(r.get("ectopy_method", "") for r in rows)),
        "intervals_on_normal_segments": plausibility,
        "per_class": {k: dict(v) for k, v in sorted(per_class.items())},
        "inconclusive_per_class": {k: v.get("inconclusive", 0) for k, v in sorted(per_class.items())},
        "analysis_ms": {"p50": round(float(np.percentile(times, 50)), 1),
                        "p95": round(float(np.percentile(times, 95)), 1)} if times else None,
    }


def main(argv: list[str] | None = None) -> int:
    from shared.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=None, help="MIT-BIH directory (default: settings' mitdb)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--records", default="", help="comma-separated subset (default: all in RECORDS)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("var/validation"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    directory = args.data or Settings().mitdb_dir
    if directory is None or not (directory / "RECORDS").exists():
        parser.error("MIT-BIH data not found: pass --data or set CARDIOMESH_DATA_DIR")
    records = [r for r in args.records.split(",") if r] or \
        [line.strip() for line in (directory / "RECORDS").read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    with Pool(args.processes) as pool:
        chunks = pool.map(validate_record, [(str(directory), r, args.seconds) for r in records], chunksize=1)
        onset_chunks = pool.map(validate_onsets, [(str(directory), r) for r in records], chunksize=1)
    rows = [row for chunk in chunks for row in chunk]
    onsets = [row for chunk in onset_chunks for row in chunk]
    summary = summarise(rows)
    summary["onset_strips"] = onset_summary(onsets)
    summary.update(records=len(records), seconds=args.seconds, wall_s=round(time.perf_counter() - started, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "segments.jsonl").open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    with (args.out / "onsets.jsonl").open("w") as handle:
        for row in onsets:
            handle.write(json.dumps(row) + "\n")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
