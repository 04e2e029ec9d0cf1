"""Would a beat's departure from its NEIGHBOURS (not the 32-beat running template) cut false V calls where
the rhythm changes within seconds (record 222's flutter and nodal stretches, docs/fl.md)? Patient-wise
2-fold CV inside DS1 (DS2 untouched), centralized BeatNet, the product's two waveform channels against
the same plus one channel computed from the cached standardised windows:

* prev: the beat minus the previous detected beat;
* nearest: the beat minus whichever neighbour (previous or next detected beat) it is closer to (mean
  |difference|): an isolated ectopic beat differs from both, a normal beat after one is close to the next.

Not run by `make bench` (leading underscore).

    .venv/bin/python bench/_neighbour_cv.py [--epochs 4] [--seeds 0,1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._af_cv import AF_RECORDS, V, in_atrial_rhythm
from bench._common import cv_arguments, ds1_halves, load_mitdb_split
from shared.ecg.signal import MODEL_FS
from shared.model.data import BeatSet
from shared.model.net import BeatNet, NetConfig
from shared.model.train import metrics, predict, train_local
from shared.settings import Settings


def with_neighbour(beats: BeatSet, how: str) -> BeatSet:
    w = beats.X_wave[:, 0]
    prev = np.concatenate([w[:1], w[:-1]])
    d_prev = w - prev
    if how == "prev":
        extra = d_prev
    else:
        d_next = w - np.concatenate([w[1:], w[-1:]])
        closer_prev = np.abs(d_prev).mean(axis=1) <= np.abs(d_next).mean(axis=1)
        extra = np.where(closer_prev[:, None], d_prev, d_next)
    return BeatSet(np.concatenate([beats.X_wave, extra[:, None].astype(np.float32)], axis=1), beats.X_rr, beats.y,
                   beats.sample, beats.record, beats.n_reference, beats.missed)


def main() -> None:
    args = cv_arguments(__doc__)
    mitdb = Settings().mitdb_dir
    assert mitdb is not None
    ds1 = load_mitdb_split("DS1")
    folds = list(ds1_halves(list(ds1)))
    import torch

    variants = [("template", ds1, 2)] + [(how, {n: with_neighbour(b, how) for n, b in ds1.items()}, 3)
                                         for how in ("prev", "nearest")]
    for variant, sets, channels in variants:
        labelled = {n: b.labelled() for n, b in sets.items()}
        atrial = {r: in_atrial_rhythm(mitdb / r, labelled[r].sample / MODEL_FS) & (labelled[r].y != V)
                  for r in AF_RECORDS}
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            for f in range(2):
                torch.manual_seed(seed)
                model = BeatNet(NetConfig(wave_channels=channels))
                train_local(model, [sets[n] for n in folds[f]], epochs=args.epochs, batch_size=64, lr=0.002,
                            class_weighting="sqrt", augment=True, seed=seed)
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
