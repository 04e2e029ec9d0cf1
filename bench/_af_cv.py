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
    mitdb = Settings().mitdb_dir
    ds1 = load_mitdb_split("DS1")
    assert mitdb is not None  # load_mitdb_split exits with the reason otherwise
    folds = list(ds1_halves(list(ds1)))
    labelled = {name: beats.labelled() for name, beats in ds1.items()}
    atrial = {r: in_atrial_rhythm(mitdb / r, labelled[r].sample / MODEL_FS) & (labelled[r].y != V)
              for r in AF_RECORDS}  # the AF record's non-V beats in AF or flutter
    rows: list[tuple[float, float, int]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for f in range(2):
            model = cv_model([ds1[n] for n in folds[f]], seed=seed, epochs=args.epochs)
            held = folds[1 - f]
            out = {n: predict(model, labelled[n]) for n in held}  # one inference per held-out record
            m = metrics(np.concatenate([labelled[n].y for n in held]), np.concatenate([out[n][0] for n in held]),
                        np.concatenate([out[n][1] for n in held]))
            v, s = m["per_class"]["V"], m["per_class"]["S"]
            se, ppv = v["se"] or 0.0, v["ppv"] or 0.0
            veb_f1 = 0.0 if se + ppv == 0 else 2 * se * ppv / (se + ppv)
            record = next(r for r in AF_RECORDS if r in held)
            false_v = int(np.sum((out[record][0] == V) & atrial[record]))
            rows.append((veb_f1, float(m["macro_f1"] or 0.0), false_v))
            print(f"seed {seed} fold {f}: VEB {se:.3f}/{ppv:.3f} (F1 {veb_f1:.3f})  SVEB {s['se']}/{s['ppv']}  "
                  f"macro-F1 {m['macro_f1']:.4f} | {record}: {int(atrial[record].sum())} non-V beats in AF/flutter, "
                  f"{false_v} called V", flush=True)
    r = np.array(rows)
    print(f"mean VEB F1 {r[:, 0].mean():.4f}  mean macro-F1 {r[:, 1].mean():.4f}  "
          f"false V in AF/flutter {int(r[:, 2].sum())}")


if __name__ == "__main__":
    main()
