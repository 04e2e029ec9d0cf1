"""Where does a model call V wrongly, and what tips those beats to V? The analysis behind docs/fl.md
("Open: VEB +P ≥ 90 %", "Where the false V calls are"). Not run by `make bench` (leading underscore).

    .venv/bin/python bench/_veb_errors.py bench/results/model.pt
    .venv/bin/python bench/_veb_errors.py /tmp/h.npz --tail 10      # _fl_sim.py --save: mean of the last 10

Prints, on DS2: false V calls per record; for one record (default 222) those calls by annotated rhythm,
their distance from the last rhythm change and their departure from the running template; and the
share of them (and of the true V calls) that stop being V when the timing features, or the two
morphology ratios, are set to those of a beat in a steady rhythm. Annotations are used only here, to
label and to split by rhythm: never as model input.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench._common import load_mitdb_split
from shared.ecg.annotations import Annotations, load_annotations
from shared.ecg.signal import MODEL_FS
from shared.model.data import BeatSet
from shared.model.features import CONTEXT_NAMES
from shared.model.net import BeatNet
from shared.model.serialize import load_model, load_vector

V = 2
MORPHOLOGY = [CONTEXT_NAMES.index("log_lf_rel"), CONTEXT_NAMES.index("log_amp_rel")]
RR_RATIOS = [i for i, name in enumerate(CONTEXT_NAMES) if name.startswith("log_") and i not in MORPHOLOGY]
RR_SECONDS = [i for i, name in enumerate(CONTEXT_NAMES) if name.endswith("_rr_s")]
LOCAL_RR = CONTEXT_NAMES.index("local_rr_s")


def _model(path: Path, tail: int) -> BeatNet:
    if path.suffix == ".npz":
        model = BeatNet()
        with np.load(path) as z:
            load_vector(model, z["history"][-tail:].mean(axis=0).astype(np.float32))
        model.eval()
        return model
    return load_model(path)[0]


@torch.no_grad()
def _predict(model: BeatNet, wave: np.ndarray, context: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(wave), torch.from_numpy(context)).argmax(1).numpy()


def steady_timing(context: np.ndarray) -> np.ndarray:
    """The same rows with the timing of a beat in a steady rhythm: every RR the local mean, every RR ratio 0."""
    out = context.copy()
    out[:, RR_SECONDS] = context[:, [LOCAL_RR]]
    out[:, RR_RATIOS] = 0.0
    return out


def usual_shape_ratios(context: np.ndarray) -> np.ndarray:
    """The same rows with the QRS low-band energy and amplitude at the wearer's medians (log ratio 0)."""
    out = context.copy()
    out[:, MORPHOLOGY] = 0.0
    return out


def _rhythm_at(annotations: Annotations, times_s: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Annotated rhythm at each time, and seconds since the last rhythm change."""
    names, since = [], []
    for t in times_s:
        current = annotations.rhythm_at(float(t))
        names.append(current.rhythm if current else "?")
        since.append(t - current.start_s if current else np.nan)
    return names, np.asarray(since)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a saved model (.pt) or an _fl_sim.py --save history (.npz)")
    parser.add_argument("--tail", type=int, default=10, help="for .npz: average the last TAIL global models")
    parser.add_argument("--record", default="222", help="the DS2 record to take apart")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from shared.settings import Settings

    mitdb = Settings().mitdb_dir
    assert mitdb is not None  # load_mitdb_split exits with the reason otherwise
    ds2 = {name: beats.labelled() for name, beats in load_mitdb_split("DS2").items()}
    model = _model(args.model, args.tail)

    false_v: dict[str, int] = {}
    true_v: list[BeatSet] = []
    preds: dict[str, np.ndarray] = {}
    for name, beats in ds2.items():
        preds[name] = pred = _predict(model, beats.X_wave, beats.X_rr)
        false_v[name] = int(np.sum((pred == V) & (beats.y != V)))
        true_v.append(beats.subset(np.flatnonzero((pred == V) & (beats.y == V))))
    ranked = sorted(false_v.items(), key=lambda kv: -kv[1])
    print(f"false V calls on DS2: {sum(false_v.values())}; most in " +
          ", ".join(f"{name} ({n})" for name, n in ranked[:6]))

    beats = ds2[args.record]
    pred = preds[args.record]
    wrong = np.flatnonzero((pred == V) & (beats.y != V))
    if not len(wrong):
        print(f"{args.record}: no false V calls")
        return
    annotations = load_annotations(mitdb / args.record)
    names, since = _rhythm_at(annotations, beats.sample[wrong] / MODEL_FS)
    print(f"{args.record} ({len(annotations.rhythms)} rhythm annotations): {len(wrong)} false V calls, "
          "by annotated rhythm:", dict(collections.Counter(names).most_common()))
    print(f"  seconds since the last rhythm change: median {np.nanmedian(since):.1f}, "
          f"quartiles {np.nanpercentile(since, 25):.1f}–{np.nanpercentile(since, 75):.1f}")
    residual = np.abs(beats.X_wave[:, 1]).mean(axis=1)
    others = np.setdiff1d(np.arange(len(beats)), wrong)
    hits = np.concatenate([np.abs(b.X_wave[:, 1]).mean(axis=1) for b in true_v])
    print(f"  departure from the running template (median mean |channel 1|): these {np.median(residual[wrong]):.2f}, "
          f"the rest of {args.record} {np.median(residual[others]):.2f}, true V calls on DS2 {np.median(hits):.2f}")
    amp = CONTEXT_NAMES.index("log_amp_rel")
    print(f"  log amplitude against the wearer's median: these {np.median(beats.X_rr[wrong, amp]):.2f}, "
          f"true V calls on DS2 {np.median(np.concatenate([b.X_rr[:, amp] for b in true_v])):.2f}")
    wave, context = beats.X_wave[wrong], beats.X_rr[wrong]
    hit_wave = np.concatenate([b.X_wave for b in true_v])
    hit_context = np.concatenate([b.X_rr for b in true_v])
    for label, change in (("steady timing", steady_timing), ("usual shape ratios", usual_shape_ratios)):
        flipped = np.mean(_predict(model, wave, change(context)) != V)
        kept = np.mean(_predict(model, hit_wave, change(hit_context)) == V)
        print(f"  with {label}: {flipped:.0%} of these are no longer V; {kept:.0%} of true V calls stay V")


if __name__ == "__main__":
    main()
