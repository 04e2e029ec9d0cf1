"""The beat model's two variants, full and small (distilled): what the small one saves and what it costs.

    .venv/bin/python bench/model_variants.py                 # the shipped files: latency + DS2 report (≈ 1 min)
    .venv/bin/python bench/model_variants.py --parts cv      # choosing the small architecture on DS1 halves (≈ 5 min)

* **variants** — `bench/results/model.pt` and `model-small.pt`: parameters, multiply-accumulates, file
  size; inference per call at 1, 2 and 3 beats (1 torch thread, as the watch runs it); per-window latency
  as `LearnedDetector` measures it (record 100's first 10 min, 1 s chunks, unloaded); DS2 figures (a report:
  DS2 chooses nothing).
* **cv** — how the small architecture was chosen, on DS1 only: for each fixed half of DS1 (`ds1_halves`)
  a teacher is trained on one half as the shipped model was (sqrt weighting, augmentation, 6 epochs),
  each candidate student is distilled from it on that half, and all are scored on the other half: EC57
  VEB/SVEB, macro-F1, and `v_runs_found` — of the runs of ≥ 3 consecutive reference V beats, the share in
  which the model calls ≥ 3 consecutive beats V (what the watch's V-run rule needs). One candidate is
  trained from the labels alone (α = 0) to show what distillation adds. One seed.

Writes `bench/results/model_variants.json` (keys merged across runs of different parts) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np
import torch

from bench._common import RESULTS, cv_model, ds1_halves, load_mitdb_split, percentile, print_table
from shared.ecg.signal import MODEL_FS, resample
from shared.ecg.sources import load_wfdb
from shared.model.data import BeatSet, concat
from shared.model.distill import (
    SMALL_CONFIG,
    DistillConfig,
    distill,
    measure_latency,
    multiply_accumulates,
    relative_cost,
    small_student,
)
from shared.model.net import BeatNet, NetConfig, n_parameters
from shared.model.serialize import load_model
from shared.model.train import evaluate, predict
from shared.settings import Settings
from watch_agent.learned import LearnedDetector

log = logging.getLogger("bench.model_variants")

PARTS = ("variants", "cv")
FULL = RESULTS / "model.pt"
SMALL = RESULTS / "model-small.pt"
NAME = "model_variants"
#: (name, architecture, distillation α): the candidates the cv part compares
CANDIDATES: tuple[tuple[str, NetConfig, float], ...] = (
    ("c4-8-12", NetConfig(channels=(4, 8, 12), hidden=16, context_hidden=12), 0.5),
    ("c8-16", NetConfig(channels=(8, 16), hidden=16, context_hidden=12), 0.5),
    ("c4-8", SMALL_CONFIG, 0.5),
    ("c4-8 labels only", SMALL_CONFIG, 0.0),
)
EPOCHS = 6


def _summary(m: dict[str, Any]) -> dict[str, Any]:
    return {"veb": m["ec57"]["veb"], "sveb": m["ec57"]["sveb"], "macro_f1": m["macro_f1"], "auroc": m["auroc"],
            "per_class": m["per_class"]}


def _window_latency(model: BeatNet, seconds: float = 600.0) -> dict[str, float]:
    """Per-window (1 s of signal) inference ms as the detector times it, with `model` as its only variant."""
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    x = resample(load_wfdb(settings.mitdb_dir / "100", end_s=seconds), MODEL_FS).samples_mv
    det = LearnedDetector(MODEL_FS, model=model, inference_slowdown_ms=0.0)
    step = round(MODEL_FS)
    windows: list[float] = []
    for i in range(0, len(x), step):
        det.last_window_ms = None
        det.feed(x[i:i + step])
        if det.last_window_ms is not None:
            windows.append(det.last_window_ms)
    return {"windows": len(windows), "p50_ms": round(percentile(windows, 50), 4),
            "p95_ms": round(percentile(windows, 95), 4), "max_ms": round(max(windows), 4)}


def variants_part() -> dict[str, Any]:
    full, _ = load_model(FULL)
    small, meta = load_model(SMALL)
    ds1, ds2 = load_mitdb_split("DS1"), load_mitdb_split("DS2")
    probe = next(iter(ds1.values()))
    out: dict[str, Any] = {"threads": 1, "latency_measured_on": f"DS1 record {probe.record}",
                           "teacher_of_small": meta.get("teacher"), "distillation": meta.get("distillation")}
    latency = {}
    for name, model, path in (("full", full, FULL), ("small", small, SMALL)):
        latency[name] = measure_latency(model, probe)
        out[name] = {"file": path.name, "file_bytes": path.stat().st_size, "parameters": n_parameters(model),
                     "multiply_accumulates": multiply_accumulates(model.config), "config": model.config.to_dict(),
                     "latency_ms": latency[name], "window_latency_ms": _window_latency(model),
                     "ds2": _score(model, ds2)}
    out["relative_cost"] = relative_cost(latency["small"], latency["full"])
    out["relative_cost_in_small_file"] = meta.get("relative_cost")
    return out


def _v_runs_found(model: BeatNet, records: dict[str, BeatSet]) -> dict[str, float | int]:
    """Of the runs of ≥ 3 consecutive reference V beats (detected beats, per record), how many the model
    calls V for ≥ 3 consecutive beats inside."""
    runs = found = 0
    for beats in records.values():
        pred, _ = predict(model, beats)
        true_v, pred_v = beats.y == 2, pred == 2
        i = 0
        while i < len(true_v):
            if not true_v[i]:
                i += 1
                continue
            j = i
            while j < len(true_v) and true_v[j]:
                j += 1
            if j - i >= 3:
                runs += 1
                streak = best = 0
                for v in pred_v[i:j]:
                    streak = streak + 1 if v else 0
                    best = max(best, streak)
                found += best >= 3
            i = j
    return {"runs": runs, "found": found, "share": round(found / runs, 4) if runs else float("nan")}


def _score(model: BeatNet, test: dict[str, BeatSet]) -> dict[str, Any]:
    return {**_summary(evaluate(model, concat(test.values()))), "v_runs_found": _v_runs_found(model, test)}


def cv_part() -> dict[str, Any]:
    ds1 = load_mitdb_split("DS1")
    halves = ds1_halves(list(ds1))
    probe = next(iter(ds1.values()))
    folds: list[dict[str, Any]] = []
    for k, (train_names, test_names) in enumerate(((halves[0], halves[1]), (halves[1], halves[0]))):
        train = [ds1[r] for r in train_names]
        test = {r: ds1[r] for r in test_names}
        t0 = time.perf_counter()
        teacher = cv_model(train, seed=0, epochs=EPOCHS, weighting="sqrt")
        fold: dict[str, Any] = {"train": train_names, "test": test_names,
                                "teacher": {**_score(teacher, test), "seconds": round(time.perf_counter() - t0)}}
        log.info("fold %d teacher: %s", k, fold["teacher"]["veb"])
        for name, config, alpha in CANDIDATES:
            t0 = time.perf_counter()
            student = small_student(config, seed=0)
            distill(teacher, student, train, DistillConfig(epochs=EPOCHS, alpha=alpha, seed=0))
            fold[name] = {**_score(student, test), "seconds": round(time.perf_counter() - t0)}
            log.info("fold %d %s: %s", k, name, fold[name]["veb"])
        folds.append(fold)
    full_latency = measure_latency(BeatNet(NetConfig()), probe)
    candidates: dict[str, Any] = {}
    for name, config, alpha in (("teacher", NetConfig(), 1.0), *CANDIDATES):
        rows = [f[name] for f in folds]
        latency = measure_latency(BeatNet(config), probe)
        candidates[name] = {
            "config": config.to_dict(), "alpha": None if name == "teacher" else alpha,
            "parameters": n_parameters(BeatNet(config)), "multiply_accumulates": multiply_accumulates(config),
            "latency_ms": latency, "relative_cost": relative_cost(latency, full_latency),
            "mean_over_folds": {
                "veb_se": _mean([r["veb"]["se"] for r in rows]), "veb_ppv": _mean([r["veb"]["ppv"] for r in rows]),
                "sveb_se": _mean([r["sveb"]["se"] for r in rows]),
                "sveb_ppv": _mean([r["sveb"]["ppv"] for r in rows]),
                "macro_f1": _mean([r["macro_f1"] for r in rows]),
                "v_runs_found": _mean([r["v_runs_found"]["share"] for r in rows]),
            },
        }
    return {"epochs": EPOCHS, "seed": 0, "candidates": candidates, "folds": folds}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(statistics.fmean(kept), 4) if kept else None


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _table(result: dict[str, Any]) -> list[tuple[str, str]]:
    table: list[tuple[str, str]] = []
    v = result.get("variants")
    if v:
        for name in ("full", "small"):
            r = v[name]
            lat, win, ds2 = r["latency_ms"], r["window_latency_ms"], r["ds2"]
            table.append((f"{name} ({r['parameters']} params, {r['multiply_accumulates']} MAC)",
                          f"{lat['batch1']['median_ms']:.3f} / {lat['batch2']['median_ms']:.3f} / "
                          f"{lat['batch3']['median_ms']:.3f} ms at 1/2/3 beats; window p50 {win['p50_ms']:.3f} "
                          f"p95 {win['p95_ms']:.3f} ms"))
            table.append((f"{name} DS2", f"VEB {_pct(ds2['veb']['se'])} / {_pct(ds2['veb']['ppv'])}, SVEB "
                                         f"{_pct(ds2['sveb']['se'])} / {_pct(ds2['sveb']['ppv'])}, macro-F1 "
                                         f"{ds2['macro_f1']}"))
        table.append(("small / full cost", f"{v['relative_cost']} (in the file: {v['relative_cost_in_small_file']})"))
    cv = result.get("cv")
    if cv:
        for name, c in cv["candidates"].items():
            m = c["mean_over_folds"]
            table.append((f"cv {name}", f"cost {c['relative_cost']}, VEB {_pct(m['veb_se'])} / {_pct(m['veb_ppv'])},"
                                        f" SVEB {_pct(m['sveb_se'])} / {_pct(m['sveb_ppv'])}, macro-F1 "
                                        f"{m['macro_f1']}, V runs found {_pct(m['v_runs_found'])}"))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="variants", help=f"comma-separated: {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        raise SystemExit(f"unknown parts {sorted(unknown)}: choose from {PARTS}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    path = RESULTS / f"{NAME}.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for part in parts:
        t0 = time.perf_counter()
        result[part] = {**{"variants": variants_part, "cv": cv_part}[part](),
                        "seconds": round(time.perf_counter() - t0, 1)}
    path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    print_table(NAME, _table(result))


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    main()
