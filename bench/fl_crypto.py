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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=22)
    args = parser.parse_args()
    path = RESULTS / "fl_crypto.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    result.update(crypto_measurements(args.params, args.clients))
    write_result("fl_crypto", result, [(k, str(v)) for k, v in result.items() if k != "naive_note"])


if __name__ == "__main__":
    main()
