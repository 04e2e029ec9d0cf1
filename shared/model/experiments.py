"""Inter-patient experiments on MIT-BIH (train DS1, test DS2; paced records in neither).

    python -m shared.model.experiments centralized [--epochs 8] [--weighting balanced] [--save bench/results/model.pt]
    python -m shared.model.experiments local [--epochs 8]
    python -m shared.model.experiments speed --model bench/results/model.pt
    python -m shared.model.experiments distill --model bench/results/model.pt [--save bench/results/model-small.pt]

Each writes its JSON under `$CARDIOMESH_STATE_DIR/experiments/` (and prints it), so every number in
docs/model.md comes from a file a command wrote.

* centralized: one model on all DS1 beats, evaluated on DS2.
* local: each DS1 patient trains a model on its own beats only; each model is evaluated on all of DS2
  and the report gives the mean of the per-model metrics (and the spread) — what a wearer would get
  without federation.
* speed: inference time per beat, batch of 1 and batched.
* distill: a small variant (`shared.model.distill.SMALL_CONFIG` unless --channels/--hidden/--context-hidden)
  trained on DS1 from the `--model` teacher's soft outputs; both variants' latencies (1 thread, batches of
  1–3 beats) and DS2 figures are reported and written into the student's meta (DS2 chooses nothing).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shared.model.data import CLASSES, DS1, BeatSet, detection_summary, load_split
from shared.model.distill import (
    SMALL_CONFIG,
    DistillConfig,
    distill,
    file_sha256,
    measure_latency,
    multiply_accumulates,
    relative_cost,
    small_student,
)
from shared.model.net import BeatNet, NetConfig, n_parameters
from shared.model.serialize import load_model, save_model
from shared.model.train import as_beatset, confusion, evaluate, predict, train_local
from shared.settings import Settings

log = logging.getLogger(__name__)


def _mitdb(settings: Settings) -> Path:
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR to a folder holding mitdb/")
    return settings.mitdb_dir


def _out(settings: Settings, name: str, result: dict[str, Any]) -> Path:
    path = settings.state_dir / "experiments" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _config(args: argparse.Namespace, base: NetConfig | None = None) -> NetConfig:
    """`base` (the default architecture) with whatever --channels/--hidden/--context-hidden say."""
    base = base or NetConfig()
    return NetConfig(channels=tuple(args.channels) if args.channels else base.channels,
                     hidden=args.hidden if args.hidden is not None else base.hidden,
                     context_hidden=args.context_hidden if args.context_hidden is not None else base.context_hidden)


def _unmatched_calls(model: BeatNet, sets: dict[str, BeatSet]) -> dict[str, int]:
    """How the model labels the detections that match no reference beat (false beats)."""
    extra = [b.subset(np.flatnonzero(b.y == -1)) for b in sets.values()]
    counts = dict.fromkeys(CLASSES, 0)
    for b in extra:
        pred, _ = predict(model, b)
        for i, name in enumerate(CLASSES):
            counts[name] += int(np.sum(pred == i))
    return counts


def _confusion(model: BeatNet, sets: dict[str, BeatSet]) -> np.ndarray:
    beats = as_beatset(sets)
    pred, _ = predict(model, beats)
    return confusion(beats.y, pred)


def _false_v_by_record(model: BeatNet, sets: dict[str, BeatSet]) -> dict[str, int]:
    out = {}
    for name, b in sets.items():
        lab = b.labelled()
        pred, _ = predict(model, lab)
        out[name] = int(np.sum((pred == 2) & (lab.y != 2)))
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


def centralized(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    mitdb = _mitdb(settings)
    train, test = load_split("DS1", mitdb), load_split("DS2", mitdb)
    torch.manual_seed(args.seed)
    model = BeatNet(_config(args))
    result = train_local(model, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         class_weighting=args.weighting, seed=args.seed, augment=args.augment)
    out: dict[str, Any] = {
        "experiment": "centralized", "train": "DS1", "test": "DS2", "parameters": n_parameters(model),
        "config": model.config.to_dict(),
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                     "class_weighting": args.weighting, "augment": args.augment, "seed": args.seed,
                     "beats": result.n, "epoch_losses": [round(x, 4) for x in result.epoch_losses],
                     "seconds": round(result.seconds, 1), "threads": torch.get_num_threads()},
        "test_metrics": evaluate(model, test),
        "test_confusion_rows_true_NSVF": _confusion(model, test).tolist(),
        "test_false_v_by_record": _false_v_by_record(model, test),
        "train_metrics": evaluate(model, train),
        "detection_ds2": detection_summary(test.values()),
        "unmatched_ds2_predicted_as": _unmatched_calls(model, test),
    }
    save_model(settings.state_dir / "experiments" / f"{args.name or 'centralized'}.pt", model,
               {k: out[k] for k in ("experiment", "train", "test", "training", "test_metrics")})
    if args.save:
        save_model(args.save, model, {k: out[k] for k in ("experiment", "train", "test", "training", "test_metrics")})
        out["saved"] = str(args.save)
    return out


def local_only(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    mitdb = _mitdb(settings)
    train, test = load_split("DS1", mitdb), load_split("DS2", mitdb)
    per_record: dict[str, Any] = {}
    seconds = 0.0
    for record in DS1:
        torch.manual_seed(args.seed)
        model = BeatNet(_config(args))
        result = train_local(model, train[record], epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             class_weighting=args.weighting, seed=args.seed, augment=args.augment)
        seconds += result.seconds
        labels = np.bincount(train[record].labelled().y, minlength=4).tolist()
        per_record[record] = {"train_beats": result.n, "train_counts": dict(zip(CLASSES, labels, strict=True)),
                              "seconds": round(result.seconds, 1), "test_metrics": evaluate(model, test)}
        log.info("local %s: %s", record, per_record[record]["test_metrics"])

    def stat(get: Any) -> dict[str, float | None]:
        values = [v for v in (get(r["test_metrics"]) for r in per_record.values()) if v is not None]
        if not values:
            return {"mean": None, "min": None, "max": None, "n": 0}
        return {"mean": round(float(np.mean(values)), 4), "min": round(float(np.min(values)), 4),
                "max": round(float(np.max(values)), 4), "n": len(values)}

    summary = {
        "per_class": {c: {m: stat(lambda t, c=c, m=m: t["per_class"][c][m]) for m in ("se", "ppv")} for c in CLASSES},
        "macro_f1": stat(lambda t: t["macro_f1"]),
        "auroc": stat(lambda t: t["auroc"]),
    }
    return {"experiment": "local-only", "train": "each DS1 record alone", "test": "DS2",
            "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                         "class_weighting": args.weighting, "total_seconds": round(seconds, 1)},
            "mean_of_per_model_metrics": summary, "per_record": per_record}


def speed(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    model, _ = load_model(args.model)
    test = load_split("DS2", _mitdb(settings))
    beats = next(iter(test.values()))
    wave, ctx = torch.from_numpy(beats.X_wave[:512]), torch.from_numpy(beats.X_rr[:512])
    out: dict[str, Any] = {"experiment": "speed", "threads": torch.get_num_threads(), "parameters": n_parameters(model),
                           "model_file_bytes": Path(args.model).stat().st_size}
    with torch.inference_mode():
        for _ in range(20):
            model(wave[:1], ctx[:1])
        times = []
        for i in range(500):
            t0 = time.perf_counter()
            model(wave[i:i + 1], ctx[i:i + 1])
            times.append(time.perf_counter() - t0)
        out["batch1_ms_per_beat"] = {"median": round(1e3 * float(np.median(times)), 4),
                                     "p95": round(1e3 * float(np.percentile(times, 95)), 4)}
        for _ in range(3):
            model(wave, ctx)
        reps = []
        for _ in range(10):
            t0 = time.perf_counter()
            model(wave, ctx)
            reps.append(time.perf_counter() - t0)
        out["batch512_ms_per_beat"] = round(1e3 * float(np.median(reps)) / len(wave), 4)
    return out


def distilled(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The small variant: distilled on DS1 from the teacher file, saved with its teacher and measurements."""
    mitdb = _mitdb(settings)
    teacher, teacher_meta = load_model(args.model)
    train, test = load_split("DS1", mitdb), load_split("DS2", mitdb)
    weighting = args.weighting or teacher_meta.get("training", {}).get("class_weighting", "sqrt")
    cfg = DistillConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, class_weighting=weighting,
                        augment=True, seed=args.seed)
    student = small_student(_config(args, SMALL_CONFIG), args.seed)
    result = distill(teacher, student, train, cfg)
    probe = next(iter(train.values()))  # latency does not depend on labels: DS1 beats, DS2 stays a report
    latency = {"small": measure_latency(student, probe), "full": measure_latency(teacher, probe)}
    out: dict[str, Any] = {
        "experiment": "distilled", "variant": "small", "train": "DS1", "test": "DS2",
        "teacher": {"file": Path(args.model).name, "sha256": file_sha256(args.model),
                    "experiment": teacher_meta.get("experiment"), "parameters": n_parameters(teacher),
                    "multiply_accumulates": multiply_accumulates(teacher.config)},
        "parameters": n_parameters(student), "multiply_accumulates": multiply_accumulates(student.config),
        "config": student.config.to_dict(),
        "distillation": {**cfg.to_dict(), "beats": result.n, "epoch_losses": [round(x, 4) for x in result.epoch_losses],
                         "seconds": round(result.seconds, 1), "threads": torch.get_num_threads()},
        "latency_ms": {**latency, "threads": 1, "measured_on": "DS1 record " + probe.record},
        "relative_cost": relative_cost(latency["small"], latency["full"]),
        "test_metrics": evaluate(student, test),
        "teacher_test_metrics": evaluate(teacher, test),
    }
    meta = {k: out[k] for k in ("experiment", "variant", "train", "test", "teacher", "distillation", "latency_ms",
                                "relative_cost", "test_metrics")}
    save_model(args.save or settings.state_dir / "experiments" / f"{args.name or 'distilled'}.pt", student, meta)
    if args.save:
        out["saved"] = str(args.save)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=["centralized", "local", "speed", "distill"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weighting", default=None, help="default: balanced (distill: the teacher's)")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, nargs="+", default=None,
                        help=f"default {list(NetConfig.channels)} (distill: {list(SMALL_CONFIG.channels)})")
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--context-hidden", type=int, default=None)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=Path("bench/results/model.pt"))
    parser.add_argument("--name", default=None, help="result file name (default: the experiment)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(2)
    settings = Settings()
    if args.weighting is None and args.experiment != "distill":
        args.weighting = "balanced"
    run = {"centralized": centralized, "local": local_only, "speed": speed, "distill": distilled}[args.experiment]
    result = run(args, settings)
    path = _out(settings, args.name or args.experiment, result)
    short = {k: v for k, v in result.items() if k != "per_record"}
    print(json.dumps(short, indent=2))
    print(f"→ {path}")


if __name__ == "__main__":
    main()
