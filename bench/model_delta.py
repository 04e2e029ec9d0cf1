"""Delta model sync (ADR 0015): bytes per model download, full vs delta, at real round-to-round changes.

Successive global models come from real federated rounds: the product's functions as `bench/_fl_sim.py`
runs them (each watch trains BeatNet locally with Adam on its own beats, sqrt class weights, augmentation;
L2 clip 1.5; the mean; the server step), one watch per patient of one fixed half of DS1 (11 watches,
`bench._common.ds1_halves`). Two chains, run side by side on two processes: without DP, and with the noise
the product ships (Gaussian, a total ε = 100 over 30 rounds at δ = 1e-5, `cardiomesh.fl.calibrate_dp`,
shares sized for k = 75 % of the watches). Each round, the coordinator's own publishing code
(`signed_payloads`) turns the new model into the full ModelMessage and the ModelDeltaMessage that go on the
wire; the published model is what the delta rebuilds, a watch's rebuild from the wire is checked against
the signed sha256, and the next round trains from the published model, as in the product.

Per round: the full download (raw float32, base64, the whole JSON message) against the delta (the same
three), % saved per download (on the messages), the largest quantisation error relative to the largest
|step|, and macro-F1 of the published model against the unquantised one on the other DS1 half (11 held-out
patients; DS2 is not touched). For the same steps also: 6 and 4 bits, lossless XOR, and the full model
through zlib (what plain compression of the full model would give).

    .venv/bin/python bench/model_delta.py [--rounds 5] [--epochs 1] [--bits 8]

Acceptance (issue 17, item 7): delta sync cuts bytes per download by ≥ 60 % at typical round-to-round
changes. Exits non-zero, saying why, without MIT-BIH (CARDIOMESH_DATA_DIR).
"""

from __future__ import annotations

import argparse
import base64
import math
import multiprocessing
import os
import platform
import statistics
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import write_result

TARGET_SAVED = 0.60
CLIP = 1.5
LR = 0.002
BATCH = 64
DP_EPSILON, DP_ROUNDS, DP_DELTA = 100.0, 30, 1e-5  # the product's benchmark configuration (ADR 0006)
COMPARE_BITS = (6, 4, 0)


@dataclass(frozen=True)
class Chain:
    name: str
    dp: bool
    rounds: int
    epochs: int
    bits: int
    max_beats: int | None
    seed: int


def _scored(model: Any, vector: np.ndarray, held: Any) -> tuple[float, np.ndarray]:
    """Macro-F1 on the held-out beats, and every beat's predicted class (to count the calls that differ)."""
    from shared.model.serialize import load_vector
    from shared.model.train import metrics, predict

    load_vector(model, vector)
    pred, score = predict(model, held)
    return float(metrics(held.y, pred, score, missed=held.missed)["macro_f1"]), pred


def run_chain(chain: Chain) -> dict[str, Any]:
    """One federation of `chain.rounds` rounds, publishing every version as the coordinator does."""
    import torch

    from bench._common import ds1_halves, load_mitdb_split
    from cardiomesh.fl import FlOptions, calibrate_dp
    from cloud_expert.coordinator.coordinator import VersionDelta, signed_payloads
    from shared.crypto.signing import generate_signing_key
    from shared.fl.aggregate import aggregate_mean
    from shared.fl.model_delta import apply_delta, encode_delta, vector_sha256
    from shared.fl.noise import aggregate_gaussian_sigma
    from shared.fl.updates import apply_update, clip_by_l2, delta
    from shared.identity import Stamper
    from shared.messages import ModelDeltaMessage, ModelMessage, encode
    from shared.model.net import BeatNet
    from shared.model.serialize import load_vector, parameters_vector
    from shared.model.train import train_local, whole_beatset

    torch.set_num_threads(1)
    ds1 = load_mitdb_split("DS1")
    train, held_names = ds1_halves(list(ds1))
    held = whole_beatset([ds1[n] for n in held_names])
    n = len(train)
    k = math.ceil(0.75 * n)
    sigma = 0.0
    if chain.dp:
        dp, _spent, _range = calibrate_dp(FlOptions(dp_epsilon=DP_EPSILON, rounds=DP_ROUNDS, dp_delta=DP_DELTA,
                                                    clip_norm=CLIP), k)
        sigma = aggregate_gaussian_sigma(dp.noise_scale, calibrated_for=k, reported=n)
    torch.manual_seed(chain.seed)
    eval_model = BeatNet()
    published = parameters_vector(eval_model).astype(np.float32)
    rng = np.random.default_rng(chain.seed)
    signing, stamp = generate_signing_key(), Stamper("fl-coordinator")
    rounds: list[dict[str, Any]] = []
    started = time.perf_counter()
    for r in range(chain.rounds):
        t0 = time.perf_counter()
        total = np.zeros(published.size)
        for i, name in enumerate(train):
            local = BeatNet()
            load_vector(local, published)
            train_local(local, ds1[name], epochs=chain.epochs, batch_size=BATCH, lr=LR, max_beats=chain.max_beats,
                        class_weighting="sqrt", augment=True, seed=(chain.seed + i) * 1000 + r)
            total += clip_by_l2(delta(parameters_vector(local), published), CLIP)[0]
        if sigma > 0:  # one draw of what the n watches' noise shares sum to
            total += rng.normal(0.0, sigma, published.size)
        target = apply_update(published, aggregate_mean(total, n)).astype(np.float32)
        # the coordinator's publish: the delta, the model it rebuilds, both messages under one signature
        blob = encode_delta(published, target, bits=chain.bits)
        new = apply_delta(published, blob)
        full, step_payload = signed_payloads(signing, new, version=r + 1, round_id=r,
                                             delta=VersionDelta(version=r + 1, base_version=r, delta=blob))
        assert step_payload is not None
        full_wire = len(encode(ModelMessage(**stamp(patient_id=None), payload=full)))
        delta_wire = len(encode(ModelDeltaMessage(**stamp(patient_id=None), payload=step_payload)))
        # a watch's side: rebuild from the wire bytes, check the signed digest
        rebuilt = apply_delta(published, base64.b64decode(step_payload.delta_b64))
        assert vector_sha256(rebuilt) == full.sha256 == vector_sha256(new), "rebuilt model differs"
        step = target.astype(np.float64) - published
        error = float(np.abs(new.astype(np.float64) - target).max() / max(np.abs(step).max(), 1e-30))
        (f1_published, calls), (f1_unquantised, calls_unquantised) = (_scored(eval_model, new, held),
                                                                       _scored(eval_model, target, held))
        raw_full = new.nbytes
        rounds.append({
            "round": r + 1,
            "step_l2": round(float(np.linalg.norm(step)), 4), "step_max_abs": round(float(np.abs(step).max()), 5),
            "full": {"raw": raw_full, "base64": len(full.model_b64), "message": full_wire,
                     "zlib": len(zlib.compress(new.astype("<f4").tobytes(), 9))},
            "delta": {"raw": len(blob), "base64": len(step_payload.delta_b64), "message": delta_wire},
            "saved_message": round(1 - delta_wire / full_wire, 4),
            "saved_raw": round(1 - len(blob) / raw_full, 4),
            "max_error_over_max_step": round(error, 6),
            "other_bits_raw": {str(b): len(encode_delta(published, target, bits=b)) for b in COMPARE_BITS},
            "macro_f1_published": round(f1_published, 4), "macro_f1_unquantised": round(f1_unquantised, 4),
            "beats_called_differently": int(np.sum(calls != calls_unquantised)), "held_out_beats": len(calls),
            "identical_bits": bool(np.array_equal(new, target)),
            "seconds": round(time.perf_counter() - t0, 1),
        })
        print(f"  {chain.name} round {r + 1}: {full_wire:,} → {delta_wire:,} B "
              f"({rounds[-1]['saved_message']:.1%} saved), {rounds[-1]['seconds']} s", flush=True)
        published = new
    return {"chain": asdict(chain), "watches": n, "k": k, "aggregate_noise_sigma": round(sigma, 4),
            "rounds": rounds, "seconds": round(time.perf_counter() - started, 1)}


def _summary(chains: list[dict[str, Any]]) -> dict[str, Any]:
    saved = [r["saved_message"] for c in chains for r in c["rounds"]]
    f1_gap = [abs(r["macro_f1_published"] - r["macro_f1_unquantised"]) for c in chains for r in c["rounds"]]
    differ = [r["beats_called_differently"] for c in chains for r in c["rounds"]]
    return {"downloads": len(saved), "saved_mean": round(statistics.fmean(saved), 4), "saved_min": min(saved),
            "saved_max": max(saved), "max_macro_f1_difference": round(max(f1_gap), 4),
            "max_beats_called_differently": max(differ), "held_out_beats": chains[0]["rounds"][0]["held_out_beats"],
            "max_error_over_max_step": max(r["max_error_over_max_step"] for c in chains for r in c["rounds"]),
            "target_saved": TARGET_SAVED, "met": min(saved) >= TARGET_SAVED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="local epochs per round (the product runs 3)")
    parser.add_argument("--max-beats", type=int, default=0, help="0: every beat, as the product")
    parser.add_argument("--bits", type=int, default=8, help="delta bits the coordinator publishes (0: lossless)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="model_delta", help="results file name under bench/results/")
    args = parser.parse_args()

    from shared.settings import Settings

    if Settings().mitdb_dir is None:  # before starting workers: one clear reason, a non-zero exit
        raise SystemExit("bench/model_delta.py: MIT-BIH not found (set CARDIOMESH_DATA_DIR or put it under "
                         "../shared/datasets/mitdb); nothing measured")
    chains = [Chain(name, dp, args.rounds, args.epochs, args.bits, args.max_beats or None, args.seed)
              for name, dp in (("no DP", False), ("DP ε=100", True))]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run_chain, chains))
    summary = _summary(results)
    result = {"config": {"rounds": args.rounds, "epochs": args.epochs, "max_beats": args.max_beats or None,
                         "bits": args.bits, "seed": args.seed, "clip": CLIP, "lr": LR, "batch": BATCH,
                         "dp": {"epsilon_total": DP_EPSILON, "rounds_planned": DP_ROUNDS, "delta": DP_DELTA}},
              "chains": results, "summary": summary, "seconds": round(time.perf_counter() - started, 1),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "load_average_1min": round(os.getloadavg()[0], 2)}
    table: list[tuple[str, str]] = []
    for chain in results:
        for r in chain["rounds"]:
            other = ", ".join(f"{'lossless' if b == '0' else b + ' bits'} {v:,}"
                              for b, v in r["other_bits_raw"].items())
            table.append((f"{chain['chain']['name']}, round {r['round']}",
                          f"full {r['full']['message']:,} B (raw {r['full']['raw']:,}, zlib {r['full']['zlib']:,}) → "
                          f"delta {r['delta']['message']:,} B (raw {r['delta']['raw']:,}): "
                          f"{r['saved_message']:.1%} saved; error ≤ {r['max_error_over_max_step']:.2%} of max|step|; "
                          f"macro-F1 {r['macro_f1_published']:.4f} vs {r['macro_f1_unquantised']:.4f} unquantised "
                          f"({r['beats_called_differently']} of {r['held_out_beats']:,} beats called differently); "
                          f"raw at {other}"))
    table += [
        ("saved per download", f"mean {summary['saved_mean']:.1%}, min {summary['saved_min']:.1%}, "
                               f"max {summary['saved_max']:.1%} over {summary['downloads']} downloads"),
        ("largest macro-F1 difference", f"{summary['max_macro_f1_difference']:.4f} (published vs unquantised; "
                                        f"at most {summary['max_beats_called_differently']} of "
                                        f"{summary['held_out_beats']:,} held-out beats called differently)"),
        ("acceptance ≥ 60 % saved", "met" if summary["met"] else "NOT met"),
        ("seconds", f"{result['seconds']}"),
    ]
    write_result(args.name, result, table)


if __name__ == "__main__":
    main()
