import base64
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.chunking import ChunkError, Reassembler, chunk_payloads


@given(body=st.binary(max_size=5000), size=st.integers(min_value=1, max_value=700), seed=st.randoms())
@settings(max_examples=60, deadline=None)
def test_any_order_reassembles_exactly(body: bytes, size: int, seed: random.Random) -> None:
    chunks = chunk_payloads(body, chunk_bytes=size, round_id=3, base_version=2, encrypted=True)
    seed.shuffle(chunks)
    r = Reassembler()
    results = [r.add("w1", c) for c in chunks]
    done = [b for b in results if b is not None]
    assert len(done) == 1 and done[0].data == body and results[-1] is not None


def test_tampered_chunk_is_refused() -> None:
    body = os.urandom(1000)
    chunks = chunk_payloads(body, chunk_bytes=300, round_id=1, base_version=0, encrypted=True)
    bad = chunks[1].model_copy(update={"chunk_b64": base64.b64encode(b"x" * 300).decode()})
    r = Reassembler()
    for c in [chunks[0], bad, *chunks[2:]][:-1]:
        assert r.add("w", c) is None
    with pytest.raises(ChunkError, match="SHA-256"):
        r.add("w", chunks[-1])


def test_inconsistent_and_out_of_range_chunks_are_refused() -> None:
    chunks = chunk_payloads(b"a" * 100, chunk_bytes=40, round_id=1, base_version=0, encrypted=False)
    r = Reassembler()
    r.add("w", chunks[0])
    with pytest.raises(ChunkError, match="disagree"):
        r.add("w", chunks[1].model_copy(update={"chunk_count": 5}))
    with pytest.raises(ChunkError):
        r.add("w", chunks[0].model_copy(update={"chunk_index": 7}))
    with pytest.raises(ChunkError, match="exceeds"):
        Reassembler(max_bytes=10).add("w", chunks[0])


def test_incomplete_uploads_expire() -> None:
    chunks = chunk_payloads(b"a" * 100, chunk_bytes=40, round_id=1, base_version=0, encrypted=False)
    r = Reassembler(max_age_s=1.0)
    r.add("w", chunks[0])
    assert r.expire(now=10**9) == 1
