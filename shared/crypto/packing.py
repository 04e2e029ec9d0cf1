"""BatchCrypt-style packing (Zhang et al., USENIX ATC'20): many quantized values per Paillier plaintext.

Layout of one plaintext (little-endian slots, slot 0 in the lowest bits)::

    | unused top bit(s) | slot S−1 | … | slot 1 | slot 0 |        each slot = b value bits + h headroom bits

A value x ∈ [−c, c] becomes the level q = round(x / step) + offset with offset = 2^(b−1) − 1 and
step = c / offset, so q ∈ [0, 2^b − 2], 0 ↦ offset exactly and ±c ↦ the ends exactly. The sum of K
clients' levels is ≤ K·(2^b − 2) < 2^(b+h) for K ≤ K_max when h = ceil(log2(K_max + 1)), so slots
never carry into each other; the sum decodes as Σx ≈ (Σq − K·offset)·step. The packed integer is
< 2^(S·(b+h)) ≤ 2^(bits(n) − 1) < n, i.e. the top bit of n is the safety bit.

Adding beyond K_max would silently wrap into the neighbouring slot, so an `EncryptedVector` carries
the number of clients summed into it and `add_encrypted` refuses to exceed `spec.max_clients`.
Values outside [−c, c] are clipped to ±c (the caller has clipped by norm already; this is the range
guard of the fixed-point code). NaN and infinities are rejected.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.crypto import paillier
from shared.crypto.paillier import PaillierPrivateKey, PaillierPublicKey

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_VECTOR_MAGIC = b"CMEV"
_VECTOR_VERSION = 1
# magic, version, value_bits, max_clients, plaintext_bits, clip, length, count, key_id
_HEADER = struct.Struct(">4sBBHHdIH8s")


class PackingError(ValueError):
    """A packed or encrypted vector that cannot be combined or decoded as asked."""


class HeadroomExceededError(PackingError):
    """Summing these vectors would exceed the client count the headroom bits were sized for."""


@dataclass(frozen=True)
class PackingSpec:
    """Fixed-point code and slot layout; every client and the coordinator must use the same one."""

    clip: float  # c: values live in [−c, c]
    value_bits: int  # b: bits per quantized value
    max_clients: int  # K_max: most clients one sum may hold
    plaintext_bits: int  # usable bits per plaintext: bits(n) − 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise ValueError("clip must be a positive finite number")
        if not 2 <= self.value_bits <= 32:
            raise ValueError("value_bits must be in [2, 32]")
        if not 1 <= self.max_clients <= 0xFFFF:
            raise ValueError("max_clients must be in [1, 65535]")
        if self.slots_per_plaintext < 1:
            raise ValueError("no slot fits in the plaintext")

    @property
    def headroom_bits(self) -> int:
        """h = ceil(log2(K_max + 1)) (== K_max.bit_length())."""
        return self.max_clients.bit_length()

    @property
    def slot_bits(self) -> int:
        return self.value_bits + self.headroom_bits

    @property
    def slots_per_plaintext(self) -> int:
        return self.plaintext_bits // (self.value_bits + self.max_clients.bit_length())

    @property
    def offset(self) -> int:
        return (1 << (self.value_bits - 1)) - 1

    @property
    def max_level(self) -> int:
        return 2 * self.offset

    @property
    def step(self) -> float:
        return self.clip / self.offset

    def plaintexts_for(self, length: int) -> int:
        return -(-length // self.slots_per_plaintext)


def packing_spec(
    public_key: PaillierPublicKey, *, clip: float, max_clients: int, value_bits: int = 16
) -> PackingSpec:
    """The spec for this key: plaintext_bits = bits(n) − 1 keeps every packed integer below n."""
    return PackingSpec(clip=clip, value_bits=value_bits, max_clients=max_clients, plaintext_bits=public_key.bits - 1)


# --- fixed point -------------------------------------------------------------------------------


def quantize(values: npt.ArrayLike, spec: PackingSpec, *, rng: np.random.Generator | None = None) -> IntArray:
    """Floats → levels in [0, 2^b − 2]. Deterministic rounding (error ≤ step/2) unless `rng` is given:
    then stochastic rounding (unbiased, error < step), which keeps small updates from rounding to 0.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    scaled = np.clip(x, -spec.clip, spec.clip) / spec.step + spec.offset
    levels = np.floor(scaled + rng.random(scaled.shape)) if rng is not None else np.rint(scaled)
    return np.clip(levels, 0, spec.max_level).astype(np.int64)


def dequantize_sum(level_sums: npt.ArrayLike, count: int, spec: PackingSpec) -> FloatArray:
    """Σ levels of `count` clients → Σ values: subtract count·offset, times step."""
    sums = np.asarray(level_sums, dtype=np.int64)
    return (sums - count * spec.offset).astype(np.float64) * spec.step


# --- slots ---------------------------------------------------------------------------------------


def pack(levels: Sequence[int] | IntArray, spec: PackingSpec) -> list[int]:
    """Levels → plaintext integers, `spec.slots_per_plaintext` per integer, slot 0 lowest."""
    arr = np.asarray(levels, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > spec.max_level):
        raise PackingError("levels outside [0, max_level]")
    width, per = spec.slot_bits, spec.slots_per_plaintext
    out = []
    for start in range(0, arr.size, per):
        acc = 0
        for level in reversed(arr[start : start + per].tolist()):
            acc = (acc << width) | level
        out.append(acc)
    return out


def unpack(plaintexts: Sequence[int], length: int, count: int, spec: PackingSpec) -> IntArray:
    """Plaintext integers → `length` slot sums, checking each is a possible sum of `count` clients.

    A slot above count·(2^b − 2) or bits above the last slot mean a client sent out-of-range levels
    (Paillier has no range proofs) or the count is wrong: that raises instead of decoding garbage.
    """
    if len(plaintexts) != spec.plaintexts_for(length):
        raise PackingError("plaintext count does not match the vector length")
    width, per = spec.slot_bits, spec.slots_per_plaintext
    mask, limit = (1 << width) - 1, count * spec.max_level
    out = np.empty(length, dtype=np.int64)
    i = 0
    for value in plaintexts:
        take = min(per, length - i)
        for _ in range(take):
            out[i] = value & mask
            value >>= width
            i += 1
        if value:
            raise PackingError("bits above the last used slot: overflow or malformed plaintext")
    if length and out.max() > limit:
        raise PackingError(f"slot sum above {count} clients' maximum: overflow or out-of-range client levels")
    return out


# --- encrypted vectors -------------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptedVector:
    """Packed Paillier ciphertexts of a sum of `count` clients' vectors of `length` values."""

    spec: PackingSpec
    length: int
    count: int
    key_id: str
    ciphertexts: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.count <= self.spec.max_clients:
            raise HeadroomExceededError(f"count {self.count} outside [1, {self.spec.max_clients}]")
        if len(self.ciphertexts) != self.spec.plaintexts_for(self.length):
            raise PackingError("ciphertext count does not match the vector length")


def encrypt_vector(
    public_key: PaillierPublicKey,
    values: npt.ArrayLike,
    spec: PackingSpec,
    *,
    noise: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
) -> EncryptedVector:
    """quantize → pack → encrypt one client's vector (count = 1).

    `noise`: precomputed r^n values (`paillier.precompute_noise`), one per ciphertext, each used once;
    the caller must discard what it passed. Missing values are computed online. `rng` turns on
    stochastic rounding.
    """
    _check_spec(public_key, spec)
    plaintexts = pack(quantize(values, spec, rng=rng), spec)
    pool = list(noise or ())
    if len(pool) > len(plaintexts):
        raise ValueError("more noise values than ciphertexts: pass exactly the ones to spend")
    pool += paillier.precompute_noise(public_key, len(plaintexts) - len(pool))
    ciphertexts = tuple(paillier.encrypt(public_key, m, noise=r) for m, r in zip(plaintexts, pool, strict=True))
    length = int(np.asarray(values).size)
    return EncryptedVector(spec=spec, length=length, count=1, key_id=public_key.key_id, ciphertexts=ciphertexts)


def add_encrypted(public_key: PaillierPublicKey, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
    """Slot-wise homomorphic sum of two vectors (public key only); refuses to exceed the headroom."""
    return sum_encrypted(public_key, (a, b))


def sum_encrypted(public_key: PaillierPublicKey, vectors: Iterable[EncryptedVector]) -> EncryptedVector:
    """Homomorphic sum of many vectors. All must share key, spec and length; Σ count ≤ spec.max_clients,
    checked before any arithmetic so an over-full aggregate is an error, never a silent wrap.
    """
    items = list(vectors)
    if not items:
        raise ValueError("nothing to sum")
    first = items[0]
    for v in items:
        if v.key_id != public_key.key_id:
            raise PackingError("vector encrypted under a different public key")
        if v.spec != first.spec or v.length != first.length:
            raise PackingError("vectors differ in packing spec or length")
    total = sum(v.count for v in items)
    if total > first.spec.max_clients:
        raise HeadroomExceededError(
            f"sum of {total} clients exceeds the {first.spec.max_clients} the headroom bits allow"
        )
    if len(items) == 1:
        return first
    columns = zip(*(v.ciphertexts for v in items), strict=True)
    summed = tuple(paillier.add_all(public_key, col) for col in columns)
    return EncryptedVector(spec=first.spec, length=first.length, count=total, key_id=first.key_id, ciphertexts=summed)


def decrypt_levels(private_key: PaillierPrivateKey, vector: EncryptedVector, *, min_clients: int) -> IntArray:
    """Per-coordinate level sums. Refuses aggregates of fewer than `min_clients` (the ≥ k rule)."""
    if vector.count < min_clients:
        raise PackingError(f"aggregate of {vector.count} clients < the {min_clients} required to decrypt")
    if vector.key_id != private_key.public_key.key_id:
        raise PackingError("vector encrypted under a different public key")
    plaintexts = [paillier.decrypt(private_key, c) for c in vector.ciphertexts]
    return unpack(plaintexts, vector.length, vector.count, vector.spec)


def decrypt_sum(private_key: PaillierPrivateKey, vector: EncryptedVector, *, min_clients: int) -> FloatArray:
    """decrypt → unpack → remove count·offset → dequantize: the float sum of `vector.count` clients."""
    levels = decrypt_levels(private_key, vector, min_clients=min_clients)
    return dequantize_sum(levels, vector.count, vector.spec)


def _check_spec(public_key: PaillierPublicKey, spec: PackingSpec) -> None:
    if spec.plaintext_bits > public_key.bits - 1:
        raise PackingError("spec packs more bits than this modulus can hold")


# --- wire format -------------------------------------------------------------------------------


def encrypted_vector_to_bytes(public_key: PaillierPublicKey, vector: EncryptedVector) -> bytes:
    """Header (32 B: spec, length, count, key id) then fixed-width ciphertexts (512 B each at 2048 bits)."""
    s = vector.spec
    header = _HEADER.pack(
        _VECTOR_MAGIC, _VECTOR_VERSION, s.value_bits, s.max_clients, s.plaintext_bits, s.clip,
        vector.length, vector.count, bytes.fromhex(vector.key_id),
    )
    return header + b"".join(paillier.ciphertext_to_bytes(public_key, c) for c in vector.ciphertexts)


def encrypted_vector_from_bytes(public_key: PaillierPublicKey, data: bytes) -> EncryptedVector:
    """Parse and validate. The count is as claimed by the sender: an edge must require count == 1
    for a single client's upload, and the cloud cross-checks it against the contributor list.
    """
    if len(data) < _HEADER.size:
        raise PackingError("truncated encrypted vector")
    magic, version, bits, kmax, ptbits, clip, length, count, key_id = _HEADER.unpack_from(data)
    if magic != _VECTOR_MAGIC or version != _VECTOR_VERSION:
        raise PackingError("not a CardioMesh encrypted vector (v1)")
    if key_id.hex() != public_key.key_id:
        raise PackingError("vector encrypted under a different public key")
    spec = PackingSpec(clip=clip, value_bits=bits, max_clients=kmax, plaintext_bits=ptbits)
    _check_spec(public_key, spec)
    width = public_key.ciphertext_bytes
    body = data[_HEADER.size :]
    if len(body) != width * spec.plaintexts_for(length):
        raise PackingError("ciphertext bytes do not match the header")
    chunks = (body[i : i + width] for i in range(0, len(body), width))
    ciphertexts = tuple(paillier.ciphertext_from_bytes(public_key, chunk, check_unit=False) for chunk in chunks)
    paillier.check_units(public_key, ciphertexts)
    return EncryptedVector(spec=spec, length=length, count=count, key_id=key_id.hex(), ciphertexts=ciphertexts)
