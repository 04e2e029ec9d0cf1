"""The model-delta codec alone: exact rebuilds, the quantisation bound, no drift over rounds, lossless mode, and a
clear `ModelDeltaError` for every delta that is not for this base."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from shared.fl.model_delta import (
    DEFAULT_BLOCK,
    HEADER_BYTES,
    LOSSLESS,
    ModelDeltaError,
    apply_delta,
    encode_delta,
    read_header,
    vector_bytes,
    vector_sha256,
)

P = 8_756  # BeatNet's parameter count: a partial last block


def _models(seed: int = 0, step: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.2, P).astype(np.float32)
    return base, (base + rng.normal(0, step, P)).astype(np.float32)


def _bound(base: np.ndarray, target: np.ndarray, bits: int, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """Per value: half a quantisation level of its block, plus one float32 rounding of the sum."""
    step = (target - base).astype(np.float64)
    padded = np.zeros(-(-P // block) * block)
    padded[:P] = np.abs(step)
    half_level = padded.reshape(-1, block).max(axis=1) / ((1 << (bits - 1)) - 1) / 2
    return np.repeat(half_level, block)[:P] * (1 + 1e-6) + np.spacing(np.abs(target)).astype(np.float64)


def test_the_coordinator_and_a_watch_rebuild_the_same_bytes() -> None:
    """The coordinator publishes what `apply_delta` rebuilds; a watch with the base from the wire (other memory,
    read-only, from bytes) gets those bytes exactly, so one signature over their sha256 verifies on both."""
    base, target = _models()
    delta = encode_delta(base, target)
    published = apply_delta(base, delta)
    on_watch = apply_delta(np.frombuffer(vector_bytes(base), dtype="<f4"), bytes(delta))
    assert vector_bytes(on_watch) == vector_bytes(published)
    assert vector_sha256(on_watch) == vector_sha256(published)
    assert read_header(delta).base_sha256 == vector_sha256(base)


@pytest.mark.parametrize("bits", [8, 6, 4, 2])
def test_the_error_is_at_most_half_a_level_of_its_block(bits: int) -> None:
    base, target = _models(seed=bits)
    published = apply_delta(base, encode_delta(base, target, bits=bits))
    error = np.abs(published.astype(np.float64) - target.astype(np.float64))
    assert np.all(error <= _bound(base, target, bits))
    assert not np.array_equal(published, target)  # lossy indeed: the bound is what is promised


def test_a_heavy_tailed_step_keeps_small_values_in_their_own_blocks() -> None:
    """One outlier coarsens only its block of 256 values, not the whole model."""
    base, target = _models(seed=3, step=0.001)
    target[10] += 5.0
    published = apply_delta(base, encode_delta(base, target))
    error = np.abs(published - target)
    assert error[DEFAULT_BLOCK:].max() < 0.001 / 127 * 4  # other blocks: their own (small) scale
    assert error[:DEFAULT_BLOCK].max() <= 5.01 / 254


def test_errors_do_not_accumulate_over_rounds() -> None:
    """Each step is measured from the published model, so after 60 rounds the published model is as close to that
    round's target as after one: half a level of that round's own step."""
    rng = np.random.default_rng(7)
    published = rng.normal(0, 0.2, P).astype(np.float32)
    target = published.copy()
    errors = []
    for _ in range(60):
        target = (target + rng.normal(0, 0.01, P)).astype(np.float32)  # the model the round computed
        base = published
        published = apply_delta(base, encode_delta(base, target))
        assert np.all(np.abs(published.astype(np.float64) - target) <= _bound(base, target, 8))
        errors.append(float(np.abs(published - target).max()))
    assert errors[-1] < 2 * errors[0]  # no drift: the last round's error is that of a single round


def test_lossless_mode_is_bit_exact_even_for_nan_inf_and_signed_zero() -> None:
    base, target = _models()
    target[:4] = [np.nan, np.inf, -0.0, -np.inf]
    delta = encode_delta(base, target, bits=LOSSLESS)
    assert vector_bytes(apply_delta(base, delta)) == vector_bytes(target)
    assert read_header(delta).bits == LOSSLESS


def test_a_zero_step_rebuilds_the_base_and_costs_little() -> None:
    base, _ = _models()
    delta = encode_delta(base, base.copy())
    assert vector_bytes(apply_delta(base, delta)) == vector_bytes(base)
    assert len(delta) < 200


def test_a_dense_step_at_8_bits_is_under_a_third_of_the_float32_model() -> None:
    """Gaussian noise is the hardest step to compress (the DP rounds' steps are mostly noise): codes then use
    nearly all of their 8 bits. The bench measures real rounds; this only guards against a regression."""
    base, target = _models()
    assert len(encode_delta(base, target)) < 0.3 * base.nbytes
    assert len(encode_delta(base, target, bits=LOSSLESS)) > 0.5 * base.nbytes  # why lossless is not the default


def test_wrong_base_length_and_base_sha_mismatch_are_refused() -> None:
    base, target = _models()
    delta = encode_delta(base, target)
    with pytest.raises(ModelDeltaError, match="8756 values, the base has 8755"):
        apply_delta(base[:-1], delta)
    other = base.copy()
    other[0] += 1e-3
    with pytest.raises(ModelDeltaError, match="another base"):
        apply_delta(other, delta)


def _with_body(delta: bytes, body: bytes) -> bytes:
    return delta[:HEADER_BYTES] + zlib.compress(body)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda d: d[:10], "shorter than"),
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: d[:4] + bytes([9]) + d[5:], "bits must be"),
        (lambda d: d[:6] + b"\x00\x00" + d[8:], "empty block"),
        (lambda d: d[:HEADER_BYTES] + b"not zlib", "not a valid zlib"),
        (lambda d: d[:-4], "not a valid zlib|exactly"),  # truncated stream
        (lambda d: d + b"trailing", "exactly"),
        (lambda d: _with_body(d, b"\x00" * (4 * 35 + P + 1)), "exactly"),  # one byte too many
        (lambda d: _with_body(d, b"\x00" * 10_000_000), "exactly"),  # a bomb stops at the expected size
        (lambda d: _with_body(d, b"\x00" * (4 * 35) + b"\x80" * P), "exceed"),  # −128 is not an 8-bit code
        (lambda d: _with_body(d, struct.pack("<f", np.nan) + b"\x00" * (4 * 34 + P)), "finite"),
        (lambda d: _with_body(d, struct.pack("<f", -1.0) + b"\x00" * (4 * 34 + P)), "non-negative"),
    ],
)
def test_malformed_deltas_raise_a_clear_error(corrupt, message: str) -> None:
    base, target = _models()
    with pytest.raises(ModelDeltaError, match=message):
        apply_delta(base, corrupt(encode_delta(base, target)))


def test_bad_encode_arguments_are_refused() -> None:
    base, target = _models()
    with pytest.raises(ModelDeltaError, match="bits"):
        encode_delta(base, target, bits=1)
    with pytest.raises(ModelDeltaError, match="block"):
        encode_delta(base, target, block=0)
    with pytest.raises(ModelDeltaError, match="8756 values, target 10"):
        encode_delta(base, target[:10])
    with pytest.raises(ModelDeltaError, match="1-D"):
        encode_delta(base.reshape(2, -1), target.reshape(2, -1))
    target[5] = np.inf
    with pytest.raises(ModelDeltaError, match="not finite"):
        encode_delta(base, target)
    assert isinstance(ModelDeltaError("x"), ValueError)  # callers that catch ValueError catch it
