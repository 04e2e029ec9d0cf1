"""How a model update crosses the wire: plain float32, or packed + Paillier-encrypted (BatchCrypt).

Three roles, three capabilities: a client `encode`s its (clipped, noised) delta with the public key;
the edge `add`s bodies with the public key only; the coordinator `decode_sum`s with the private key,
and only a sum of at least k clients. The same interface serves both, so every test of the protocol
runs with and without encryption.
"""

from __future__ import annotations

import base64
from typing import Protocol

import numpy as np

from shared.crypto.packing import (
    EncryptedVector,
    PackingError,
    PackingSpec,
    add_encrypted,
    decrypt_sum,
    encrypt_vector,
    encrypted_vector_from_bytes,
    encrypted_vector_to_bytes,
    packing_spec,
)
from shared.crypto.paillier import CiphertextError, PaillierPrivateKey, PaillierPublicKey, public_key_from_bytes
from shared.messages.fl import RoundPayload


class UpdateCodec(Protocol):
    encrypted: bool

    def encode(self, vector: np.ndarray) -> bytes: ...

    def add(self, total: bytes | None, body: bytes) -> bytes: ...

    def add_sums(self, a: bytes, b: bytes) -> bytes: ...

    def decode_sum(self, body: bytes, clients: int) -> np.ndarray: ...


class CodecError(ValueError):
    """A body that is not a valid update under this codec (wrong size, out-of-range ciphertexts...)."""


class PlainCodec:
    """float32 on the wire, summed in float64 at the edge. For `--no-encrypt` runs and tests."""

    encrypted = False

    def __init__(self, params: int) -> None:
        self.params = params

    def _vector(self, body: bytes, dtype: str) -> np.ndarray:
        width = np.dtype(dtype).itemsize
        if len(body) != self.params * width:
            raise CodecError(f"expected {self.params * width} bytes, got {len(body)}")
        vector = np.frombuffer(body, dtype=dtype)
        if not np.all(np.isfinite(vector)):
            raise CodecError("non-finite values in update")
        return vector

    def encode(self, vector: np.ndarray) -> bytes:
        return np.asarray(vector, dtype="<f4").tobytes()

    def add(self, total: bytes | None, body: bytes) -> bytes:
        """Running sums are float64 (a sum of bodies is itself a body of the aggregate)."""
        start = np.zeros(self.params) if total is None else self._vector(total, "<f8")
        return (start + self._vector(body, "<f4")).astype("<f8").tobytes()

    def add_sums(self, a: bytes, b: bytes) -> bytes:
        """Two edges' sums → one (hierarchical aggregation at the cloud)."""
        return (self._vector(a, "<f8") + self._vector(b, "<f8")).astype("<f8").tobytes()

    def decode_sum(self, body: bytes, clients: int) -> np.ndarray:
        return self._vector(body, "<f8").copy()


class PackedPaillierCodec:
    """BatchCrypt: quantize → pack → Paillier. The private key is passed only where it lives (the cloud)."""

    encrypted = True

    def __init__(self, public_key: PaillierPublicKey, spec: PackingSpec, *, params: int,
                 private_key: PaillierPrivateKey | None = None, min_clients: int = 1,
                 rng: np.random.Generator | None = None) -> None:
        self.params = params
        self.public_key = public_key
        self.spec = spec
        self._private_key = private_key
        self.min_clients = min_clients
        self._rng = rng
        #: the last sum this codec produced, as bytes and parsed: the edge adds each update to the running sum it
        #: got back from the previous `add`, and parsing that again cost more than the addition itself
        self._last_sum: tuple[bytes, EncryptedVector] | None = None

    def _parse(self, body: bytes) -> EncryptedVector:
        try:
            return encrypted_vector_from_bytes(self.public_key, body)
        except (PackingError, CiphertextError, ValueError) as exc:
            raise CodecError(str(exc)) from None

    @property
    def ciphertexts_per_update(self) -> int:
        return self.spec.plaintexts_for(self.params)

    def encode(self, vector: np.ndarray, *, noise: list[int] | None = None) -> bytes:
        """`noise`: precomputed r^n values (the offline phase), spent once each and discarded by the caller."""
        encrypted = encrypt_vector(self.public_key, vector, self.spec, rng=self._rng, noise=noise)
        return encrypted_vector_to_bytes(self.public_key, encrypted)

    def add(self, total: bytes | None, body: bytes) -> bytes:
        update = self._parse(body)
        if update.count != 1 or update.spec != self.spec:
            raise CodecError("not a single client update under this round's packing")
        if total is None:
            return body
        return self._sum(self._parse_sum(total), update)

    def add_sums(self, a: bytes, b: bytes) -> bytes:
        return self._sum(self._parse_sum(a), self._parse_sum(b))

    def _parse_sum(self, body: bytes) -> EncryptedVector:
        """A sum: not parsed again when it is the very bytes object this codec's last `_sum` returned."""
        last = self._last_sum
        if last is not None and last[0] is body:
            return last[1]
        return self._parse(body)

    def _sum(self, a: EncryptedVector, b: EncryptedVector) -> bytes:
        try:
            total = add_encrypted(self.public_key, a, b)
        except PackingError as exc:
            raise CodecError(str(exc)) from None
        out = encrypted_vector_to_bytes(self.public_key, total)
        self._last_sum = (out, total)
        return out

    def decode_sum(self, body: bytes, clients: int) -> np.ndarray:
        if self._private_key is None:
            raise CodecError("no private key here: only the coordinator decrypts")
        encrypted = self._parse(body)
        if encrypted.count != clients:
            raise CodecError(f"aggregate says {encrypted.count} clients, envelope says {clients}")
        try:
            return decrypt_sum(self._private_key, encrypted, min_clients=self.min_clients)
        except PackingError as exc:
            raise CodecError(str(exc)) from None


def codec_for_round(spec: RoundPayload, *, private_key: PaillierPrivateKey | None = None,
                    rng: np.random.Generator | None = None) -> UpdateCodec:
    """The codec a round announcement implies; the public key comes from the announcement itself."""
    if not spec.encrypt:
        return PlainCodec(spec.params)
    if not spec.public_key_b64:
        raise CodecError("encrypted round without a public key")
    public_key = public_key_from_bytes(base64.b64decode(spec.public_key_b64))
    packing = packing_spec(public_key, clip=spec.quant_range or spec.clip_norm, max_clients=spec.max_clients,
                           value_bits=spec.quant_bits)
    return PackedPaillierCodec(public_key, packing, params=spec.params, private_key=private_key,
                               min_clients=spec.min_clients, rng=rng)
