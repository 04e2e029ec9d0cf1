"""In-process FL simulation for hyperparameter sweeps: the same `shared.fl` functions as `cardiomesh fl run`
(local Adam training per DS1 patient, L2 clip, Gaussian noise on the sum sized for k reporters, mean,
server step, tail averaging) without the bus or the crypto, so one 30-round configuration takes minutes, not tens of
minutes. Not run by `make bench` (leading underscore); the real measurements are `bench/fl_accuracy.py`.

    .venv/bin/python bench/_fl_sim.py --rounds 30 --epochs 3 --clip 1.5 --z 0.52 --seed 1

Prints per-round update norms (to pick the clip: about the median) and, at the end, DS2 metrics of the
last few global models and of tail averages over the last m of them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench._common import ds1_halves, load_mitdb_split
from shared.fl.accounting import GaussianRounds, privacy_spent
from shared.fl.aggregate import aggregate_mean
from shared.fl.noise import aggregate_gaussian_sigma
from shared.fl.updates import apply_update, clip_by_l2, delta
from shared.model.net import BeatNet
from shared.model.serialize import load_vector, parameters_vector
from shared.model.train import Weighting, as_beatset, class_weights, evaluate, train_local


def _brief(model: BeatNet, vector: np.ndarray, ds2: dict) -> str:
    load_vector(model, vector.astype(np.float32))
    e = evaluate(model, list(ds2.values()))
    v, s = e["per_class"]["V"], e["per_class"]["S"]
    return (f"macro-F1 {e['macro_f1']:.4f}  VEB {v['se']:.3f}/{v['ppv']} (EC57 +P {e['ec57']['veb']['ppv']})  "
            f"SVEB {s['se']:.3f}/{s['ppv']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-beats", type=int, default=0, help="0: all of a patient's beats")
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--clip", type=float, default=1.5)
    p.add_argument("--mu", type=float, default=0.0, help="FedProx proximal weight (0: FedAvg)")
    p.add_argument("--server-momentum", type=float, default=0.0,
                   help="FedAvgM (Hsu et al. 2019): the server steps by v = β·v + mean update (0: FedAvg)")
    p.add_argument("--z", type=float, default=0.0, help="noise multiplier σ/clip of the aggregate (0: no DP)")
    p.add_argument("--k", type=int, default=17, help="reporters the noise shares are sized for (75 %% of 22)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tails", default="1,3,5,10", help="tail averages to score at the end")
    p.add_argument("--weighting", choices=("local", "global", "none"), default="local",
                   help="class weights: each watch's own sqrt weights, or one sqrt weighting of the pooled "
                        "training counts announced to every watch, or none (plain cross-entropy)")
    p.add_argument("--fold", type=int, choices=(0, 1), default=None,
                   help="patient-wise CV inside DS1: federate one half of DS1's patients, score on the other "
                        "(DS2 untouched); without it, federate all of DS1 and score on DS2")
    p.add_argument("--save", type=Path, default=None, help="write every round's global vector to this .npz")
    a = p.parse_args()
    torch.set_num_threads(1)
    ds1 = load_mitdb_split("DS1")
    if a.fold is None:
        ds2 = load_mitdb_split("DS2")
    else:
        train, held = ds1_halves(list(ds1))
        if a.fold == 1:
            train, held = held, train
        ds1, ds2 = {n: ds1[n] for n in train}, {n: ds1[n] for n in held}
    weighting: Weighting = "none" if a.weighting == "none" else "sqrt"
    if a.weighting == "global":
        weighting = [float(x) for x in class_weights(as_beatset(list(ds1.values())).y, "sqrt")]
        print("global class weights", [round(x, 3) for x in weighting])
    torch.manual_seed(a.seed)
    model = BeatNet()
    w = parameters_vector(model).astype(np.float64)
    rng = np.random.default_rng(a.seed)
    names = sorted(ds1)
    history: list[np.ndarray] = []
    velocity = np.zeros_like(w)
    started = time.perf_counter()
    for r in range(a.rounds):
        clipped, norms = [], []
        for i, name in enumerate(names):
            local = BeatNet()
            load_vector(local, w.astype(np.float32))
            train_local(local, ds1[name], epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                        max_beats=a.max_beats or None, class_weighting=weighting, augment=True, mu=a.mu,
                        seed=(a.seed + i) * 1000 + r)
            update, norm = clip_by_l2(delta(parameters_vector(local), w), a.clip)
            norms.append(norm)
            clipped.append(update)
        total = np.sum(clipped, axis=0)
        if a.z > 0:  # one draw of what the n shares sized for k sum to
            total += rng.normal(0.0, aggregate_gaussian_sigma(a.z * a.clip, calibrated_for=a.k,
                                                               reported=len(names)), w.size)
        velocity = a.server_momentum * velocity + aggregate_mean(total, len(names))
        w = apply_update(w, velocity)
        history.append(w.astype(np.float32))
        print(f"round {r + 1:3d}  update norm median {np.median(norms):.2f} max {np.max(norms):.2f}  "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    if a.save is not None:
        np.savez_compressed(a.save, history=np.stack(history))
    eps = privacy_spent(GaussianRounds(a.z), a.rounds, target_delta=1e-5)[0] if a.z > 0 else math.inf
    print(f"ε after {a.rounds} rounds (δ = 1e-5): {eps:.1f}")
    for m in (int(x) for x in a.tails.split(",")):
        print(f"tail {m:2d}: {_brief(model, np.mean(history[-m:], axis=0), ds2)}")


if __name__ == "__main__":
    main()
