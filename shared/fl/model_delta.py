"""Delta model sync: a new global model sent as a compressed step from the version a watch already holds.

Consecutive global models differ by one server step, yet each version used to travel whole (float32,
base64) to every watch. The step is encoded instead: block-quantized to `bits` (per block of `block`
values one float32 scale = max|step| / (2^(bits−1) − 1), int8 codes), then zlib; or, with `bits = 0`,
losslessly (XOR of the float32 bit patterns, byte planes, zlib).

Exact by construction, not by tolerance: the coordinator publishes `apply_delta(base, encode_delta(base,
target))` rather than `target`, and keeps that vector as its global model. A watch holding the same base
bytes runs the same `apply_delta` on the same delta bytes (IEEE float32 multiply, then add: each op
correctly rounded, so every platform gets the same bits), so both hold bit-identical vectors and the one
signature, over the full model's sha256, verifies either way. The quantisation error is at most half a
scale per value in one round and never accumulates: the next step is measured from the published vector.

Wire layout: a 44-byte big-endian header, then one zlib stream.

    magic "CMD1" | bits u8 | 0 u8 | block u16 | params u32 | base sha256 (32 bytes) | zlib(body)
    bits 2..8: body = per-block scales (float32 LE) ‖ codes (int8, one per value)
    bits 0:    body = the 4 byte planes of (base XOR target) as uint32 LE (lossless)

Pure numpy and bytes: no I/O, no logging, no message types.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: int8 codes: the default, and what the coordinator publishes unless configured otherwise.
DEFAULT_BITS = 8
#: 0 bits: lossless XOR mode (for comparison; exact without the publish-what-you-reconstruct argument).
LOSSLESS = 0
DEFAULT_BLOCK = 256
ZLIB_LEVEL = 9

_MAGIC = b"CMD1"
_HEADER = struct.Struct(">4sBBHI32s")
HEADER_BYTES = _HEADER.size

F32Array = npt.NDArray[np.float32]


class ModelDeltaError(ValueError):
    """A delta that cannot be encoded or applied: malformed, for another base, or of the wrong length."""


@dataclass(frozen=True, slots=True)
class DeltaHeader:
    bits: int
    block: int
    params: int
    base_sha256: str  # hex digest of the base vector's float32 little-endian bytes


def vector_bytes(vector: npt.ArrayLike) -> bytes:
    """The canonical bytes of a model vector (float32 little-endian): what is hashed and signed."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_sha256(vector: npt.ArrayLike) -> str:
    return hashlib.sha256(vector_bytes(vector)).hexdigest()


def _qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


def _check_bits(bits: int) -> None:
    if bits != LOSSLESS and not 2 <= bits <= 8:
        raise ModelDeltaError(f"bits must be 0 (lossless) or 2..8, not {bits}")


def _flat_f32(vector: npt.ArrayLike, what: str) -> F32Array:
    array = np.asarray(vector)
    if array.ndim != 1 or array.size == 0:
        raise ModelDeltaError(f"{what} must be a non-empty 1-D vector, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype="<f4")


def encode_delta(base: npt.ArrayLike, target: npt.ArrayLike, *, bits: int = DEFAULT_BITS,
                 block: int = DEFAULT_BLOCK) -> bytes:
    """The step base → target (both taken as float32) as delta bytes for `apply_delta(base, ·)`.

    Quantized modes need a finite step (`ModelDeltaError` otherwise: encode losslessly instead).
    """
    _check_bits(bits)
    if not 1 <= block <= 0xFFFF:
        raise ModelDeltaError(f"block must be 1..65535 values, not {block}")
    b, t = _flat_f32(base, "base"), _flat_f32(target, "target")
    if b.size != t.size:
        raise ModelDeltaError(f"base has {b.size} values, target {t.size}")
    if b.size >= 2**32:
        raise ModelDeltaError("a model of 2^32 values or more does not fit the header")
    header = _HEADER.pack(_MAGIC, bits, 0, block, b.size, hashlib.sha256(b.tobytes()).digest())
    if bits == LOSSLESS:
        xor = b.view("<u4") ^ t.view("<u4")
        body = np.ascontiguousarray(xor.view(np.uint8).reshape(-1, 4).T).tobytes()  # byte planes
    else:
        step = t - b
        if not np.all(np.isfinite(step)):
            raise ModelDeltaError("the step is not finite: quantized deltas need finite models")
        qmax = _qmax(bits)
        padded = np.zeros(math.ceil(step.size / block) * block, dtype=np.float32)
        padded[: step.size] = step
        blocks = padded.reshape(-1, block)
        scales = (np.abs(blocks).max(axis=1) / np.float32(qmax)).astype("<f4")
        divisor = np.where(scales > 0, scales, np.float32(1))
        codes = np.clip(np.rint(blocks / divisor[:, None]), -qmax, qmax).astype(np.int8).reshape(-1)[: step.size]
        body = scales.tobytes() + codes.tobytes()
    return header + zlib.compress(body, ZLIB_LEVEL)


def read_header(delta: bytes) -> DeltaHeader:
    """The header of delta bytes, checked; `ModelDeltaError` for anything that is not one."""
    if len(delta) < HEADER_BYTES:
        raise ModelDeltaError(f"delta of {len(delta)} bytes is shorter than its {HEADER_BYTES}-byte header")
    magic, bits, reserved, block, params, base_digest = _HEADER.unpack_from(delta)
    if magic != _MAGIC or reserved != 0:
        raise ModelDeltaError("not a model delta (bad magic)")
    _check_bits(bits)
    if block < 1 or params < 1:
        raise ModelDeltaError("delta header gives an empty block or model")
    return DeltaHeader(bits=bits, block=block, params=params, base_sha256=base_digest.hex())


def _inflate(data: bytes, expected: int) -> bytes:
    """zlib, refusing anything but exactly `expected` bytes (a bomb stops at expected + 1)."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(data, expected + 1)
    except zlib.error as exc:
        raise ModelDeltaError(f"delta body is not a valid zlib stream: {exc}") from exc
    if len(body) != expected or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise ModelDeltaError(f"delta body does not hold exactly {expected} bytes")
    return body


def apply_delta(base: npt.ArrayLike, delta: bytes) -> F32Array:
    """base + the step in `delta`, as float32: the one function the coordinator and every watch run."""
    header = read_header(delta)
    b = _flat_f32(base, "base")
    if b.size != header.params:
        raise ModelDeltaError(f"delta is for a model of {header.params} values, the base has {b.size}")
    if hashlib.sha256(b.tobytes()).hexdigest() != header.base_sha256:
        raise ModelDeltaError("delta was made against another base (base sha256 mismatch)")
    n = header.params
    payload = delta[HEADER_BYTES:]
    if header.bits == LOSSLESS:
        planes = np.frombuffer(_inflate(payload, 4 * n), dtype=np.uint8).reshape(4, n)
        xor = np.ascontiguousarray(planes.T).view("<u4").reshape(-1)
        return (b.view("<u4") ^ xor).view("<f4").astype(np.float32)
    blocks = math.ceil(n / header.block)
    body = _inflate(payload, 4 * blocks + n)
    scales = np.frombuffer(body, dtype="<f4", count=blocks)
    codes = np.frombuffer(body, dtype=np.int8, offset=4 * blocks)
    qmax = _qmax(header.bits)
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise ModelDeltaError("delta scales must be finite and non-negative")
    if np.any(np.abs(codes.astype(np.int16)) > qmax):
        raise ModelDeltaError(f"delta codes exceed ±{qmax} for {header.bits} bits")
    step = codes.astype(np.float32) * np.repeat(scales.astype(np.float32), header.block)[:n]
    out: F32Array = (b.astype(np.float32) + step).astype(np.float32)
    return out
