"""Paillier: CSPRNG keys, CRT decryption, precomputed noise, serialisation, and two-way lightphe agreement."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import paillier
from shared.crypto.paillier import InsecureKeyError, PaillierKeyPair


def test_refuses_small_modulus_without_test_flag() -> None:
    with pytest.raises(InsecureKeyError):
        paillier.generate_keypair(1024)
    kp = paillier.generate_keypair(128, insecure_test_only=True)
    assert kp.public_key.bits == 128


def test_production_key_shape(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    assert pk.bits == 2048 and pk.g == pk.n + 1
    assert sk.p != sk.q and sk.p.bit_length() == sk.q.bit_length() == 1024
    assert [f.name for f in dataclasses.fields(pk)] == ["n"]
    assert not any(hasattr(pk, name) for name in ("p", "q", "phi", "lam", "lambda_"))
    assert str(sk.p) not in repr(sk) and str(sk.p) not in repr(keys_2048)


def test_never_uses_python_random(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> int:
        raise AssertionError("Mersenne Twister used for key material")

    for name in ("randint", "randrange", "getrandbits", "random"):
        monkeypatch.setattr(random, name, boom)
    kp = paillier.generate_keypair(256, insecure_test_only=True)
    c = paillier.encrypt(kp.public_key, 7)
    assert paillier.decrypt(kp.private_key, c) == 7


def test_roundtrip_2048(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    for m in (0, 1, 2**2000 + 12345, pk.n - 1):
        assert paillier.decrypt(sk, paillier.encrypt(pk, m)) == m
    a, b = paillier.encrypt(pk, 5), paillier.encrypt(pk, 5)
    assert a != b  # probabilistic


def test_plaintext_range_enforced(keys_small: PaillierKeyPair) -> None:
    pk = keys_small.public_key
    for bad in (-1, pk.n):
        with pytest.raises(ValueError):
            paillier.encrypt(pk, bad)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_homomorphic_add(keys_small: PaillierKeyPair, data: st.DataObject) -> None:
    pk, sk = keys_small.public_key, keys_small.private_key
    a = data.draw(st.integers(0, pk.n - 1))
    b = data.draw(st.integers(0, pk.n - 1))
    c = paillier.add(pk, paillier.encrypt(pk, a), paillier.encrypt(pk, b))
    assert paillier.decrypt(sk, c) == (a + b) % pk.n


def test_precomputed_noise_public_and_crt(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    pool = paillier.precompute_noise(pk, 2) + paillier.precompute_noise(sk, 2)
    assert len(set(pool)) == 4
    for i, r_n in enumerate(pool):
        assert paillier.decrypt(sk, paillier.encrypt(pk, 1000 + i, noise=r_n)) == 1000 + i


def test_lightphe_decrypts_ours_and_we_decrypt_lightphe(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    lp = paillier.to_lightphe(sk)
    ours = [paillier.encrypt(pk, m) for m in (0, 17, 2**1500 + 3)]
    assert [lp.decrypt(lp.create_ciphertext_obj(c)) for c in ours] == [0, 17, 2**1500 + 3]
    theirs = lp.encrypt(123456789)
    assert paillier.decrypt(sk, theirs.value) == 123456789


def test_lightphe_add_agrees_with_ours(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    lp_public = paillier.to_lightphe(pk)  # edge-side: public key only
    c1, c2 = paillier.encrypt(pk, 40), paillier.encrypt(pk, 2)
    theirs = lp_public.create_ciphertext_obj(c1) + lp_public.create_ciphertext_obj(c2)
    assert theirs.value == paillier.add(pk, c1, c2)
    assert paillier.decrypt(sk, theirs.value) == 42
    assert "private_key" not in paillier.lightphe_keys(pk)


def test_lightphe_keygen_is_never_called(monkeypatch: pytest.MonkeyPatch, keys_small: PaillierKeyPair) -> None:
    from lightphe.cryptosystems.Paillier import Paillier

    def boom(*_: object, **__: object) -> dict[str, object]:
        raise AssertionError("lightphe keygen (random-based) called")

    monkeypatch.setattr(Paillier, "generate_keys", boom)
    lp = paillier.to_lightphe(keys_small.private_key)
    assert lp.decrypt(lp.create_ciphertext_obj(paillier.encrypt(keys_small.public_key, 9))) == 9


def test_serialisation(keys_2048: PaillierKeyPair) -> None:
    pk, sk = keys_2048.public_key, keys_2048.private_key
    assert paillier.public_key_from_bytes(paillier.public_key_to_bytes(pk)) == pk
    restored = paillier.private_key_from_bytes(paillier.private_key_to_bytes(sk))
    assert restored.public_key == pk and (restored.p, restored.q) == (sk.p, sk.q)
    c = paillier.encrypt(pk, 99)
    raw = paillier.ciphertext_to_bytes(pk, c)
    assert len(raw) == pk.ciphertext_bytes == 512
    assert paillier.ciphertext_from_bytes(pk, raw) == c
    with pytest.raises(paillier.CiphertextError):
        paillier.ciphertext_from_bytes(pk, raw[1:])
    with pytest.raises(paillier.CiphertextError):
        paillier.ciphertext_from_bytes(pk, b"\x00" * 512)


def test_small_key_bytes_refused_without_flag(keys_small: PaillierKeyPair) -> None:
    data = paillier.public_key_to_bytes(keys_small.public_key)
    with pytest.raises(InsecureKeyError):
        paillier.public_key_from_bytes(data)
    assert paillier.public_key_from_bytes(data, insecure_test_only=True) == keys_small.public_key
