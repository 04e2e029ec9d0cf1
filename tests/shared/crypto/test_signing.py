"""Ed25519 model signatures: devices refuse unsigned, wrongly signed, tampered and stale global models."""

from __future__ import annotations

import dataclasses

import pytest

from shared.crypto import signing
from shared.crypto.signing import (
    BadSignatureError,
    ModelVerificationError,
    StaleModelError,
    TamperedModelError,
    UnsignedModelError,
)

BLOB = b"\x00torch-state-dict\x01" * 100


@pytest.fixture(scope="module")
def key() -> signing.Ed25519PrivateKey:
    return signing.generate_signing_key()


def test_valid_model_verifies(key: signing.Ed25519PrivateKey) -> None:
    model = signing.sign_model(key, BLOB, version=3, round=7)
    meta = signing.verify_model(key.public_key(), model, current_version=2)
    assert (meta.version, meta.round) == (3, 7)
    assert signing.verify_model(key.public_key(), model, current_version=None) == meta


def test_unsigned(key: signing.Ed25519PrivateKey) -> None:
    model = signing.sign_model(key, BLOB, version=3, round=7)
    for sig in (None, b""):
        with pytest.raises(UnsignedModelError):
            signing.verify_model(key.public_key(), dataclasses.replace(model, signature=sig), current_version=None)


def test_wrong_key_and_altered_metadata(key: signing.Ed25519PrivateKey) -> None:
    model = signing.sign_model(signing.generate_signing_key(), BLOB, version=3, round=7)
    with pytest.raises(BadSignatureError):
        signing.verify_model(key.public_key(), model, current_version=None)
    good = signing.sign_model(key, BLOB, version=3, round=7)
    bumped = dataclasses.replace(good, metadata=dataclasses.replace(good.metadata, version=99))
    with pytest.raises(BadSignatureError):
        signing.verify_model(key.public_key(), bumped, current_version=None)


def test_tampered_blob(key: signing.Ed25519PrivateKey) -> None:
    model = signing.sign_model(key, BLOB, version=3, round=7)
    tampered = dataclasses.replace(model, blob=BLOB[:-1] + b"\x02")
    with pytest.raises(TamperedModelError):
        signing.verify_model(key.public_key(), tampered, current_version=None)


@pytest.mark.parametrize("current", [3, 4])
def test_stale(key: signing.Ed25519PrivateKey, current: int) -> None:
    model = signing.sign_model(key, BLOB, version=3, round=7)
    with pytest.raises(StaleModelError):
        signing.verify_model(key.public_key(), model, current_version=current)
    assert issubclass(StaleModelError, ModelVerificationError)


def test_key_serialisation(key: signing.Ed25519PrivateKey) -> None:
    model = signing.sign_model(key, BLOB, version=1, round=1)
    raw = signing.public_key_to_bytes(key.public_key())
    assert len(raw) == 32
    signing.verify_model(signing.public_key_from_bytes(raw), model, current_version=0)
    pem = signing.public_key_to_pem(key.public_key())
    signing.verify_model(signing.public_key_from_pem(pem), model, current_version=0)
    restored = signing.private_key_from_pem(signing.private_key_to_pem(key, password=b"pw"), password=b"pw")
    signing.verify_model(key.public_key(), signing.sign_model(restored, BLOB, version=2, round=1), current_version=1)
    with pytest.raises(ValueError):
        signing.public_key_from_bytes(raw[:31])
