"""BatchCrypt packing: quantize → pack → encrypt → homomorphic sum → decrypt → unpack recovers the float sum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import packing
from shared.crypto.packing import EncryptedVector, HeadroomExceededError, PackingError, PackingSpec
from shared.crypto.paillier import PaillierKeyPair

CLIP = 0.05


def test_layout_for_2048_bit_modulus(keys_2048: PaillierKeyPair) -> None:
    spec = packing.packing_spec(keys_2048.public_key, clip=CLIP, max_clients=22, value_bits=16)
    assert (spec.headroom_bits, spec.slot_bits, spec.plaintext_bits) == (5, 21, 2047)
    assert spec.slots_per_plaintext == 97
    assert spec.plaintexts_for(20_000) == 207
    assert spec.max_clients * spec.max_level < 2**spec.slot_bits  # headroom suffices for K_max at the extremes


def test_quantize_extremes_and_clipping() -> None:
    spec = PackingSpec(clip=1.0, value_bits=8, max_clients=4, plaintext_bits=255)
    levels = packing.quantize([-1.0, 0.0, 1.0, -5.0, 5.0], spec)
    assert levels.tolist() == [0, spec.offset, spec.max_level, 0, spec.max_level]
    with pytest.raises(ValueError):
        packing.quantize([np.nan], spec)
    with pytest.raises(ValueError):
        packing.quantize([np.inf], spec)


def test_pack_unpack_roundtrip() -> None:
    spec = PackingSpec(clip=1.0, value_bits=8, max_clients=3, plaintext_bits=100)
    levels = np.arange(0, 255, dtype=np.int64) % (spec.max_level + 1)
    plaintexts = packing.pack(levels, spec)
    assert all(p < 2**spec.plaintext_bits for p in plaintexts)
    assert packing.unpack(plaintexts, levels.size, 1, spec).tolist() == levels.tolist()


def _client_vectors(data: st.DataObject, clients: int, length: int, clip: float) -> list[np.ndarray]:
    special = st.sampled_from([-clip, clip, 0.0, -0.0])
    value = st.one_of(special, st.floats(-clip, clip, allow_nan=False))
    return [np.array(data.draw(st.lists(value, min_size=length, max_size=length))) for _ in range(clients)]


@settings(max_examples=40, deadline=None)
@given(data=st.data(), max_clients=st.integers(1, 12), length=st.integers(1, 40), value_bits=st.integers(4, 16))
def test_sum_of_k_clients_within_quantization_error(
    keys_small: PaillierKeyPair, data: st.DataObject, max_clients: int, length: int, value_bits: int
) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=max_clients, value_bits=value_bits)
    k = data.draw(st.integers(1, max_clients))
    vectors = _client_vectors(data, k, length, CLIP)
    total = packing.sum_encrypted(pk, [packing.encrypt_vector(pk, v, spec) for v in vectors])
    assert total.count == k
    got = packing.decrypt_sum(sk, total, min_clients=1)
    bound = k * spec.step / 2 + 1e-12
    assert np.max(np.abs(got - np.sum(vectors, axis=0))) <= bound


@settings(max_examples=20, deadline=None)
@given(data=st.data(), max_clients=st.integers(1, 8), length=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_stochastic_rounding_within_k_steps(
    keys_small: PaillierKeyPair, data: st.DataObject, max_clients: int, length: int, seed: int
) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=max_clients, value_bits=10)
    rng = np.random.default_rng(seed)
    vectors = _client_vectors(data, max_clients, length, CLIP)
    encrypted = [packing.encrypt_vector(pk, v, spec, rng=rng) for v in vectors]
    got = packing.decrypt_sum(sk, packing.sum_encrypted(pk, encrypted), min_clients=max_clients)
    assert np.max(np.abs(got - np.sum(vectors, axis=0))) <= max_clients * spec.step + 1e-12


def test_stochastic_rounding_is_unbiased() -> None:
    spec = PackingSpec(clip=1.0, value_bits=4, max_clients=1, plaintext_bits=64)
    x = np.full(200_000, 0.3 * spec.step)  # would round to 0 deterministically
    levels = packing.quantize(x, spec, rng=np.random.default_rng(1))
    mean = float(np.mean(packing.dequantize_sum(levels, 1, spec)))
    assert mean == pytest.approx(0.3 * spec.step, rel=0.02)
    assert np.all(packing.quantize(x, spec) == spec.offset)


def test_all_extremes_at_k_max_decode_exactly(keys_small: PaillierKeyPair) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=7, value_bits=8)
    length = 3 * spec.slots_per_plaintext
    for extreme in (CLIP, -CLIP):
        v = np.full(length, extreme)
        total = packing.sum_encrypted(pk, [packing.encrypt_vector(pk, v, spec) for _ in range(7)])
        np.testing.assert_allclose(packing.decrypt_sum(sk, total, min_clients=7), 7 * v, atol=1e-12)


def test_headroom_cannot_be_exceeded(keys_small: PaillierKeyPair) -> None:
    pk = keys_small.public_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=3)
    one = packing.encrypt_vector(pk, np.full(5, CLIP), spec)
    three = packing.sum_encrypted(pk, [one, one, one])
    with pytest.raises(HeadroomExceededError):
        packing.add_encrypted(pk, three, one)
    with pytest.raises(HeadroomExceededError):
        packing.sum_encrypted(pk, [one] * 4)
    with pytest.raises(HeadroomExceededError):
        EncryptedVector(spec=spec, length=5, count=4, key_id=pk.key_id, ciphertexts=one.ciphertexts)


def test_lying_count_or_out_of_range_levels_detected(keys_small: PaillierKeyPair) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=3)
    one = packing.encrypt_vector(pk, np.full(5, CLIP), spec)
    pair = packing.sum_encrypted(pk, [one, one])
    understated = EncryptedVector(spec=spec, length=5, count=1, key_id=pk.key_id, ciphertexts=pair.ciphertexts)
    with pytest.raises(PackingError, match="slot sum"):
        packing.decrypt_sum(sk, understated, min_clients=1)
    with pytest.raises(PackingError):
        packing.unpack([1 << spec.slot_bits * spec.slots_per_plaintext], 1, 1, spec)


def test_min_clients_and_key_and_spec_mismatch(keys_small: PaillierKeyPair, keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=4)
    one = packing.encrypt_vector(pk, np.zeros(3), spec)
    with pytest.raises(PackingError, match="required"):
        packing.decrypt_sum(sk, one, min_clients=2)
    other_spec = packing.encrypt_vector(pk, np.zeros(3), packing.packing_spec(pk, clip=1.0, max_clients=4))
    with pytest.raises(PackingError):
        packing.add_encrypted(pk, one, other_spec)
    with pytest.raises(PackingError):
        packing.add_encrypted(pk, one, packing.encrypt_vector(pk, np.zeros(4), spec))
    with pytest.raises(PackingError):
        packing.sum_encrypted(keys_2048.public_key, [one])


def test_production_2048_roundtrip_and_wire_format(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=22)
    rng = np.random.default_rng(7)
    vectors = [rng.uniform(-CLIP, CLIP, 150) for _ in range(3)]
    noise = packing.paillier.precompute_noise(pk, spec.plaintexts_for(150))
    encrypted = [packing.encrypt_vector(pk, vectors[0], spec, noise=noise)]
    encrypted += [packing.encrypt_vector(pk, v, spec) for v in vectors[1:]]
    wire = [packing.encrypted_vector_to_bytes(pk, e) for e in encrypted]
    assert len(wire[0]) == 32 + 2 * 512
    received = [packing.encrypted_vector_from_bytes(pk, w) for w in wire]
    assert received == encrypted
    total = packing.sum_encrypted(pk, received)
    got = packing.decrypt_sum(sk, total, min_clients=3)
    assert np.max(np.abs(got - np.sum(vectors, axis=0))) <= 3 * spec.step / 2 + 1e-12
    with pytest.raises(PackingError):
        packing.encrypted_vector_from_bytes(pk, wire[0][:-1])
    with pytest.raises(ValueError, match="more noise"):
        packing.encrypt_vector(pk, vectors[0], spec, noise=[1, 2, 3])


@settings(max_examples=30, deadline=None)
@given(max_clients=st.integers(1, 10), extra=st.integers(1, 5), split=st.integers(0, 100))
def test_overflow_is_always_an_error(keys_small: PaillierKeyPair, max_clients: int, extra: int, split: int) -> None:
    """However the over-full sum is formed (one batch or two partial sums), it raises before any wrap."""
    pk = keys_small.public_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=max_clients, value_bits=8)
    one = packing.encrypt_vector(pk, np.full(4, CLIP), spec)
    total = max_clients + extra
    with pytest.raises(HeadroomExceededError):
        packing.sum_encrypted(pk, [one] * total)
    left = 1 + split % max_clients
    right = total - left
    if right <= max_clients:
        with pytest.raises(HeadroomExceededError):
            packing.add_encrypted(pk, packing.sum_encrypted(pk, [one] * left), packing.sum_encrypted(pk, [one] * right))


def test_a_vector_with_one_non_unit_ciphertext_is_refused(keys_2048: PaillierKeyPair) -> None:
    """The unit check runs once per vector (the product of its ciphertexts mod n), and still finds a single
    ciphertext that shares a factor with n wherever it sits."""
    pk, sk = keys_2048.public_key, keys_2048.private_key
    spec = packing.packing_spec(pk, clip=CLIP, max_clients=22)
    wire = packing.encrypted_vector_to_bytes(pk, packing.encrypt_vector(pk, np.zeros(300), spec))
    assert spec.plaintexts_for(300) == 4
    width, header = pk.ciphertext_bytes, len(wire) - 4 * pk.ciphertext_bytes
    for position in range(4):
        start = header + position * width
        for bad in (sk.p * 12345, pk.n * 7):  # shares p with n; a multiple of n (≡ 0 mod n)
            forged = wire[:start] + packing.paillier.ciphertext_to_bytes(pk, bad) + wire[start + width:]
            with pytest.raises(packing.paillier.CiphertextError, match="not a unit"):
                packing.encrypted_vector_from_bytes(pk, forged)
    assert packing.encrypted_vector_from_bytes(pk, wire).count == 1
