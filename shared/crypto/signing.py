"""Ed25519 signatures over global models: devices install only models the coordinator signed, newer than theirs.

The signature covers canonical metadata bytes (domain tag, version, round, sha256 of the blob), not the
blob itself, so a device can check the signature before hashing megabytes, and the blob is bound to
the signature through its digest. Verification order: signed at all → signature valid under the
trusted key → blob matches the signed digest → version newer than the installed one.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_DOMAIN = b"cardiomesh/global-model/v1\x00"
_FIELDS = struct.Struct(">QQ32s")


class ModelVerificationError(Exception):
    """A global model the device must not install; the subclass says why."""


class UnsignedModelError(ModelVerificationError):
    """No signature at all."""


class BadSignatureError(ModelVerificationError):
    """A signature that does not verify under the trusted coordinator key (wrong key or altered metadata)."""


class TamperedModelError(ModelVerificationError):
    """Signature valid, but the blob's sha256 differs from the signed digest."""


class StaleModelError(ModelVerificationError):
    """Validly signed, but its version is not newer than the one installed (replay or rollback)."""


@dataclass(frozen=True)
class ModelMetadata:
    version: int
    round: int
    sha256: str  # hex digest of the model blob

    def __post_init__(self) -> None:
        if not (0 <= self.version < 2**64 and 0 <= self.round < 2**64):
            raise ValueError("version and round must fit in an unsigned 64-bit integer")
        if len(bytes.fromhex(self.sha256)) != 32:
            raise ValueError("sha256 must be 64 hex characters")


@dataclass(frozen=True)
class SignedModel:
    blob: bytes
    metadata: ModelMetadata
    signature: bytes | None  # 64 bytes; None (or empty) = unsigned


def metadata_bytes(metadata: ModelMetadata) -> bytes:
    """The exact bytes signed: a domain tag (no cross-protocol reuse), then fixed-width fields."""
    return _DOMAIN + _FIELDS.pack(metadata.version, metadata.round, bytes.fromhex(metadata.sha256))


def sign_model(private_key: Ed25519PrivateKey, blob: bytes, *, version: int, round: int) -> SignedModel:
    metadata = ModelMetadata(version=version, round=round, sha256=hashlib.sha256(blob).hexdigest())
    return SignedModel(blob=blob, metadata=metadata, signature=private_key.sign(metadata_bytes(metadata)))


def verify_metadata(public_key: Ed25519PublicKey, metadata: ModelMetadata, signature: bytes | None) -> None:
    """The signature check alone (`UnsignedModelError`, `BadSignatureError`): before any work on a blob, e.g.
    before rebuilding a model from a delta, so unsigned claims cannot make a device fetch or compute anything."""
    if not signature:
        raise UnsignedModelError("global model carries no signature")
    try:
        public_key.verify(signature, metadata_bytes(metadata))
    except InvalidSignature as exc:
        raise BadSignatureError("global model signature does not verify under the coordinator key") from exc


def verify_model(public_key: Ed25519PublicKey, model: SignedModel, *, current_version: int | None) -> ModelMetadata:
    """Return the metadata of a model safe to install, or raise a `ModelVerificationError` subclass.

    `current_version` is the installed model's version (None on a fresh device: any signed version).
    """
    verify_metadata(public_key, model.metadata, model.signature)
    if hashlib.sha256(model.blob).hexdigest() != model.metadata.sha256:
        raise TamperedModelError("global model blob does not match its signed sha256")
    if current_version is not None and model.metadata.version <= current_version:
        raise StaleModelError(f"global model version {model.metadata.version} is not newer than {current_version}")
    return model.metadata


# --- keys ----------------------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_pem(private_key: Ed25519PrivateKey, *, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with `password` when given (the coordinator's key at rest)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def private_key_from_pem(data: bytes, *, password: bytes | None = None) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("PEM does not hold an Ed25519 private key")
    return key


def public_key_to_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte key: small enough to provision into a watch's config."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(data: bytes) -> Ed25519PublicKey:
    if len(data) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(data)


def public_key_to_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("PEM does not hold an Ed25519 public key")
    return key
