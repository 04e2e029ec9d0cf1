"""FL crypto cost for one model update: naive per-parameter lightphe Paillier vs BatchCrypt packing (gmpy2).

One 2048-bit key from the CSPRNG; a 20k-parameter update in the clip range; quantized to 16 bits with
headroom for `--clients` clients. Naive = one lightphe `encrypt` per quantized parameter, timed on a
sample and extrapolated linearly (a full run would take tens of minutes). Packed = this repo's
`encrypt_vector` (quantize → pack → gmpy2 Paillier), timed in full, once without and once with the
offline pool of r^n values (whose own cost is reported separately). Edge = one homomorphic addition of
a client's vector into an aggregate (public key only); cloud = decrypt + unpack + dequantize the sum.

    .venv/bin/python bench/fl_crypto.py [--params 20000] [--clients 22]

Round timings ("local_train_s", "round_plain_s", "round_encrypted_s") are added to the same JSON by
the FL round benchmark; this script keeps them when it rewrites the file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import RESULTS, write_result
from shared.crypto import packing, paillier

CLIP = 0.05
VALUE_BITS = 16
NAIVE_SAMPLE = 200


def crypto_measurements(params: int = 20_000, clients: int = 22) -> dict[str, Any]:
    """Time naive vs packed encryption, edge addition and cloud decryption for one `params`-sized update."""
    rng = np.random.default_rng()
    t0 = time.perf_counter()
    keys = paillier.generate_keypair(paillier.MIN_MODULUS_BITS)
    keygen_s = time.perf_counter() - t0
    pk, sk = keys.public_key, keys.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=clients, value_bits=VALUE_BITS)
    update = rng.uniform(-CLIP, CLIP, params)
    levels = packing.quantize(update, spec)

    # Naive: lightphe, one ciphertext per parameter (the quantized level, so both paths carry the same data).
    lightphe_public = paillier.to_lightphe(pk)
    sample = min(NAIVE_SAMPLE, params)
    t0 = time.perf_counter()
    naive_cts = [lightphe_public.encrypt(int(q)).value for q in levels[:sample]]
    naive_sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for q in levels[:sample]:
        paillier.encrypt(pk, int(q))
    naive_gmpy2_sample_s = time.perf_counter() - t0
    assert [paillier.decrypt(sk, c) for c in naive_cts[:5]] == levels[:5].tolist()

    # Packed, online: every r^n computed during encryption.
    t0 = time.perf_counter()
    client = packing.encrypt_vector(pk, update, spec)
    packed_encrypt_s = time.perf_counter() - t0
    wire = packing.encrypted_vector_to_bytes(pk, client)

    # Packed with the offline pool: r^n computed beforehand (idle/charging time), spent once here.
    t0 = time.perf_counter()
    pool = paillier.precompute_noise(pk, spec.plaintexts_for(params))
    precompute_pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pooled = packing.encrypt_vector(pk, update, spec, noise=pool)
    packed_encrypt_pooled_s = time.perf_counter() - t0
    del pool

    # Edge: fold `clients` uploads into one aggregate, one addition at a time (the same upload reused:
    # the cost of an addition does not depend on the contents).
    received = packing.encrypted_vector_from_bytes(pk, wire)
    aggregate = pooled
    add_times = []
    for _ in range(clients - 1):
        t0 = time.perf_counter()
        aggregate = packing.add_encrypted(pk, aggregate, received)
        add_times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    total = packing.decrypt_sum(sk, aggregate, min_clients=clients)
    decrypt_s = time.perf_counter() - t0
    max_error = float(np.max(np.abs(total - clients * update)))
    assert max_error <= clients * spec.step / 2 + 1e-9

    naive_encrypt_s = naive_sample_s / sample * params
    naive_bytes = params * pk.ciphertext_bytes
    return {
        "params": params,
        "clients": clients,
        "modulus_bits": pk.bits,
        "value_bits": spec.value_bits,
        "headroom_bits": spec.headroom_bits,
        "slots_per_ciphertext": spec.slots_per_plaintext,
        "ciphertexts": len(client.ciphertexts),
        "naive_encrypt_s": round(naive_encrypt_s, 3),
        "naive_gmpy2_encrypt_s": round(naive_gmpy2_sample_s / sample * params, 3),
        "naive_note": (
            f"naive_* timed on {sample} parameters and extrapolated linearly to {params}; "
            f"naive_encrypt_s = lightphe LightPHE.encrypt per quantized parameter, naive_gmpy2_encrypt_s = this "
            f"repo's gmpy2 encrypt per parameter (separates packing's gain from gmpy2's); naive_bytes counts "
            f"{pk.ciphertext_bytes} B per ciphertext, the fixed-width encoding, no framing"
        ),
        "packed_encrypt_s": round(packed_encrypt_s, 3),
        "precompute_pool_s": round(precompute_pool_s, 3),
        "packed_encrypt_online_with_pool_s": round(packed_encrypt_pooled_s, 4),
        "naive_bytes": naive_bytes,
        "packed_bytes": len(wire),
        "edge_add_s": round(float(np.median(add_times)), 4),
        "decrypt_s": round(decrypt_s, 3),
        "keygen_s": round(keygen_s, 3),
        "encrypt_speedup_x": round(naive_encrypt_s / packed_encrypt_s, 1),
        "size_reduction_x": round(naive_bytes / len(wire), 1),
        "max_abs_error_sum": max_error,
        "error_bound_sum": clients * spec.step / 2,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, single-threaded",
    }


def round_timings(clients: int = 22, max_beats: int = 1000, rounds: int = 3) -> dict[str, Any]:
    """One round's wall time over the real broker, plaintext and encrypted, next to the floor: the same
    local training (1 epoch, ≤ max_beats beats per client) run one client after another, no bus.

    All parties share this 2-core machine, so the watches' training takes turns (watch_agent.learner's
    lock) exactly as in the floor; rounds after the first are reported (the first pays torch warm-up).
    The encrypted round spends encryption randomness precomputed between rounds (the watches' idle-time
    offline phase, BatchCrypt); its cost is reported apart as `offline_precompute_s`.
    """
    import statistics
    import tempfile

    import torch

    from cardiomesh.fl import FlOptions, run_federation
    from shared.model.data import DS1, load_records
    from shared.model.net import BeatNet
    from shared.model.train import train_local
    from shared.settings import Settings

    torch.set_num_threads(1)  # small batches: one thread is faster here, and floor and rounds match
    settings = Settings()
    if settings.mitdb_dir is None:
        raise SystemExit("MIT-BIH not found: set CARDIOMESH_DATA_DIR")
    sets = load_records([settings.mitdb_dir / r for r in DS1[:clients]])
    def floor() -> float:
        started = time.perf_counter()
        for i, name in enumerate(sorted(sets)):
            torch.manual_seed(i)
            train_local(BeatNet(), sets[name], epochs=1, batch_size=32, lr=0.001, max_beats=max_beats, seed=i,
                        class_weighting="sqrt", augment=True)
        return time.perf_counter() - started

    warm = BeatNet()
    train_local(warm, next(iter(sets.values())), epochs=1, max_beats=200, class_weighting="sqrt", augment=True)
    floors = [floor()]
    out: dict[str, Any] = {"round_clients": clients, "round_max_beats": max_beats, "round_epochs": 1}
    for label, encrypt in (("plain", False), ("encrypted", True)):
        with tempfile.TemporaryDirectory() as state:
            options = FlOptions(clients=clients, rounds=rounds, encrypt=encrypt, epochs=1, batch_size=32, lr=0.001,
                                max_beats=max_beats, evaluate_every=10_000, run_dir=Path(state) / "run")
            result = run_federation(settings.model_copy(update={"state_dir": Path(state)}), options,
                                    test_sets={}, train_sets=sets)
        steady = [r["seconds"] for r in result.rounds[1:] if r["status"] == "ok"]
        out[f"round_{label}_s"] = round(statistics.median(steady), 2)
        out[f"round_{label}_all_s"] = [r["seconds"] for r in result.rounds]
        out[f"round_{label}_update_bytes"] = result.update_bytes[-1]
        if encrypt:
            out["offline_precompute_s"] = [r["extra"]["offline_precompute_s"] for r in result.rounds]
    floors.append(floor())  # measured before and after the rounds: the machine is shared, take the faster
    local_train_s = min(floors)
    out["local_train_s"] = round(local_train_s, 2)
    out["local_train_all_s"] = [round(f, 2) for f in floors]
    out["round_plain_over_local_x"] = round(out["round_plain_s"] / local_train_s, 2)
    out["round_encrypted_over_plain_x"] = round(out["round_encrypted_s"] / out["round_plain_s"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=22)
    parser.add_argument("--skip-rounds", action="store_true", help="crypto micro-benchmarks only")
    args = parser.parse_args()
    path = RESULTS / "fl_crypto.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    result.update(crypto_measurements(args.params, args.clients))
    if not args.skip_rounds:
        result.update(round_timings(args.clients))
    write_result("fl_crypto", result, [(k, str(v)) for k, v in result.items() if k != "naive_note"])


if __name__ == "__main__":
    main()
