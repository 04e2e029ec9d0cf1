"""The coordinator's secrets: the Paillier private key and the Ed25519 model-signing key.

They live only under the coordinator's key directory (files 0600) and never travel: rounds carry the
Paillier *public* key, devices hold the signing *public* key. Nothing on the edge can read them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.crypto import paillier
from shared.crypto.signing import generate_signing_key, private_key_from_pem, private_key_to_pem


@dataclass(frozen=True)
class CoordinatorKeys:
    paillier: paillier.PaillierKeyPair
    signing: Ed25519PrivateKey

    @property
    def verify_key(self) -> Ed25519PublicKey:
        return self.signing.public_key()

    def verify_key_bytes(self) -> bytes:
        return self.verify_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def load_or_create(directory: Path, *, bits: int = paillier.MIN_MODULUS_BITS) -> CoordinatorKeys:
    """Keys from `directory`, generated there (from the OS CSPRNG) on first use."""
    paillier_path, signing_path = directory / "paillier.key", directory / "signing.pem"
    if paillier_path.exists() and signing_path.exists():
        private = paillier.private_key_from_bytes(paillier_path.read_bytes())
        pair = paillier.PaillierKeyPair(public_key=private.public_key, private_key=private)
        return CoordinatorKeys(pair, private_key_from_pem(signing_path.read_bytes()))
    pair = paillier.generate_keypair(bits)
    signing = generate_signing_key()
    _write_secret(paillier_path, paillier.private_key_to_bytes(pair.private_key))
    _write_secret(signing_path, private_key_to_pem(signing))
    return CoordinatorKeys(pair, signing)
