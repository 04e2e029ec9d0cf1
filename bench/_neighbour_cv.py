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

from bench._af_cv import compare_variants
from bench._common import cv_arguments, load_mitdb_split
from shared.model.data import BeatSet


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
    ds1 = load_mitdb_split("DS1")
    compare_variants([("template", ds1, 2)] + [(how, {n: with_neighbour(b, how) for n, b in ds1.items()}, 3)
                                                 for how in ("prev", "nearest")], args)


if __name__ == "__main__":
    main()
