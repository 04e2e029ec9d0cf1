"""Would the record's second lead lift VEB +P? Patient-wise 2-fold CV inside DS1 (the halves of
`bench/_af_cv.py`; DS2 untouched), centralized BeatNet, the product's one-lead features against the same
plus the second lead's waveform channels, computed by the product's `BeatFeaturizer` on the second lead at
the beats the watch's detector found on MLII. Not run by `make bench` (leading underscore).

    .venv/bin/python bench/_two_lead_cv.py [--epochs 4] [--seeds 0,1]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import wfdb

from bench._af_cv import compare_variants
from bench._common import cv_arguments, load_mitdb_split
from shared.ecg.qrs import StreamingQrsDetector
from shared.ecg.signal import MODEL_FS, Signal, resample
from shared.ecg.sources import load_wfdb
from shared.model.data import CHUNK_S, BeatSet
from shared.model.features import BeatFeaturizer
from shared.settings import Settings


def second_lead_waves(record: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(samples, waves) of the second lead at the beats the detector finds on MLII."""
    header = wfdb.rdheader(str(record))
    names = list(header.sig_name or [])
    other = next(i for i, n in enumerate(names) if n != "MLII")
    rec = wfdb.rdrecord(str(record), channels=[other])
    lead2 = resample(Signal(np.nan_to_num(rec.p_signal[:, 0]), float(header.fs), names[other], record.name),
                     MODEL_FS).samples_mv
    lead1 = resample(load_wfdb(record), MODEL_FS).samples_mv
    qrs, feat = StreamingQrsDetector(MODEL_FS), BeatFeaturizer(MODEL_FS)
    rows = []
    step = round(CHUNK_S * MODEL_FS)
    for i in range(0, len(lead1), step):
        feat.push_samples(lead2[i:i + step])
        for beat in qrs.feed(lead1[i:i + step]):
            feat.push_beat(beat)
        rows.extend(feat.pop_ready())
    rows.extend(feat.flush())
    return (np.array([r.beat.sample for r in rows]), np.stack([r.wave for r in rows]).astype(np.float32),
            names[other])


def with_second_lead(record: Path, beats: BeatSet) -> BeatSet:
    cache = Settings().state_dir / "cache" / "lead2"
    cache.mkdir(parents=True, exist_ok=True)
    file = cache / f"{record.name}.npz"
    if not file.exists():
        samples, waves, lead = second_lead_waves(record)
        np.savez(file, sample=samples, wave=waves, lead=lead)
    with np.load(file) as z:
        samples, waves, lead = z["sample"], z["wave"], str(z["lead"])
    if not np.array_equal(samples, beats.sample):
        raise SystemExit(f"{record.name}: second-lead beats differ from the cached MLII beats")
    print(f"{record.name}: second lead {lead}", flush=True)
    return BeatSet(np.concatenate([beats.X_wave, waves], axis=1), beats.X_rr, beats.y, beats.sample, beats.record,
                   beats.n_reference, beats.missed)


def main() -> None:
    args = cv_arguments(__doc__)
    mitdb = Settings().mitdb_dir
    assert mitdb is not None
    ds1 = load_mitdb_split("DS1")
    two = {n: with_second_lead(mitdb / n, b) for n, b in ds1.items()}
    compare_variants([("one lead", ds1, 2), ("two leads", two, 4)], args)


if __name__ == "__main__":
    main()
