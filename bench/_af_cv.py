"""Does a change cut false V calls in atrial fibrillation and flutter without costing VEB or macro-F1?
Patient-wise 2-fold CV inside DS1 only (the halves of `bench/_weighting_cv.py`, DS2 untouched),
centralized BeatNet, sqrt class weights, two seeds. Each held-out half holds one of DS1's two AF records
(201 or 203); besides the usual metrics it counts that record's non-V beats, annotated in AF or
flutter, that the model calls V: the failure record 222 shows on DS2 (docs/fl.md). Not run by
`make bench` (leading underscore).

    .venv/bin/python bench/_af_cv.py [--epochs 4] [--seeds 0,1]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import cv_arguments, cv_model, ds1_halves, load_mitdb_split
from shared.ecg.annotations import load_annotations
from shared.ecg.signal import MODEL_FS
from shared.model.train import metrics, predict
from shared.settings import Settings

V = 2
AF_RECORDS = ("201", "203")
ATRIAL = ("AFIB", "AFL")


def in_atrial_rhythm(record_path: Path, times_s: np.ndarray) -> np.ndarray:
    """Whether each time falls in an annotated AF or flutter episode."""
    annotations = load_annotations(record_path)
    rhythms = [annotations.rhythm_at(float(t)) for t in times_s]
    return np.array([r is not None and r.rhythm in ATRIAL for r in rhythms], dtype=bool)


def main() -> None:
    args = cv_arguments(__doc__)
    compare_variants([("f2", load_mitdb_split("DS1"), 2)], args)


def compare_variants(variants: list[tuple[str, dict[str, Any], int]], args: Any) -> None:
    """DS1 CV of BeatNet on each (name, record → BeatSet, waveform channels) variant, the folds and seeds
    of this study; prints per-fold rows and the means (VEB Se / +P / F1, macro-F1, false V in AF)."""
    mitdb = Settings().mitdb_dir
    assert mitdb is not None
    for variant, sets, channels in variants:
        folds = list(ds1_halves(list(sets)))
        labelled = {n: b.labelled() for n, b in sets.items()}
        atrial = {r: in_atrial_rhythm(mitdb / r, labelled[r].sample / MODEL_FS) & (labelled[r].y != V)
                  for r in AF_RECORDS}
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            for f in range(2):
                model = cv_model([sets[n] for n in folds[f]], seed=seed, epochs=args.epochs, wave_channels=channels)
                held = folds[1 - f]
                out = {n: predict(model, labelled[n]) for n in held}
                m = metrics(np.concatenate([labelled[n].y for n in held]),
                            np.concatenate([out[n][0] for n in held]), np.concatenate([out[n][1] for n in held]))
                v, s = m["per_class"]["V"], m["per_class"]["S"]
                se, ppv = v["se"] or 0.0, v["ppv"] or 0.0
                f1 = 0.0 if se + ppv == 0 else 2 * se * ppv / (se + ppv)
                record = next(r for r in AF_RECORDS if r in held)
                false_v = int(np.sum((out[record][0] == V) & atrial[record]))
                rows.append((se, ppv, f1, float(m["macro_f1"] or 0.0), false_v))
                print(f"{variant} seed {seed} fold {f}: VEB {se:.3f}/{ppv:.3f} (F1 {f1:.3f}) SVEB {s['se']}/"
                      f"{s['ppv']} macro-F1 {m['macro_f1']:.4f} false V in {record} AF/flutter {false_v}", flush=True)
        r = np.array(rows)
        print(f"{variant}: mean VEB Se {r[:, 0].mean():.3f} +P {r[:, 1].mean():.3f} F1 {r[:, 2].mean():.4f} "
              f"macro-F1 {r[:, 3].mean():.4f} false V in AF {int(r[:, 4].sum())}", flush=True)


if __name__ == "__main__":
    main()
