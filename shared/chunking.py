"""Bodies larger than one MQTT message travel as numbered chunks with the body's SHA-256.

`Reassembler` collects chunks per (sender, round, body hash) and yields the body once every chunk
is there and the hash matches; anything inconsistent is refused with a reason, never half-used.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field

from shared.messages.fl import ChunkPayload


class ChunkError(ValueError):
    """A chunk that cannot belong to a valid body (reason in the message)."""


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def split_body(body: bytes, chunk_bytes: int) -> list[bytes]:
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return [body[i:i + chunk_bytes] for i in range(0, len(body), chunk_bytes)] or [b""]


def chunk_payloads(body: bytes, *, chunk_bytes: int, round_id: int, base_version: int, encrypted: bool,
                   clients: int = 1, contributors: list[str] | None = None, samples: int = 0) -> list[ChunkPayload]:
    digest = sha256_hex(body)
    parts = split_body(body, chunk_bytes)
    return [
        ChunkPayload(round_id=round_id, base_version=base_version, chunk_index=i, chunk_count=len(parts),
                     body_sha256=digest, body_bytes=len(body), encrypted=encrypted, clients=clients,
                     contributors=list(contributors or []), samples=samples,
                     chunk_b64=base64.b64encode(part).decode("ascii"))
        for i, part in enumerate(parts)
    ]


@dataclass(slots=True)
class _Partial:
    first: ChunkPayload
    parts: dict[int, bytes] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Body:
    sender: str
    meta: ChunkPayload  # the first chunk's metadata (chunk fields aside, identical across chunks)
    data: bytes


class Reassembler:
    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, max_age_s: float = 600.0) -> None:
        self._partials: dict[tuple[str, int, str], _Partial] = {}
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s

    def add(self, sender: str, chunk: ChunkPayload) -> Body | None:
        """Add one chunk; the whole body once complete and verified, else None. Raises ChunkError."""
        if chunk.chunk_index >= chunk.chunk_count:
            raise ChunkError(f"chunk {chunk.chunk_index} of {chunk.chunk_count}")
        if chunk.body_bytes > self.max_bytes:
            raise ChunkError(f"body of {chunk.body_bytes} bytes exceeds {self.max_bytes}")
        try:
            data = base64.b64decode(chunk.chunk_b64, validate=True)
        except ValueError:
            raise ChunkError("chunk is not base64") from None
        key = (sender, chunk.round_id, chunk.body_sha256)
        partial = self._partials.setdefault(key, _Partial(chunk))
        first = partial.first
        if (chunk.chunk_count, chunk.body_bytes, chunk.encrypted, chunk.clients, chunk.base_version) != (
                first.chunk_count, first.body_bytes, first.encrypted, first.clients, first.base_version):
            del self._partials[key]
            raise ChunkError("chunks of one body disagree about its shape")
        partial.parts[chunk.chunk_index] = data
        if len(partial.parts) < first.chunk_count:
            return None
        del self._partials[key]
        body = b"".join(partial.parts[i] for i in range(first.chunk_count))
        if len(body) != first.body_bytes or sha256_hex(body) != first.body_sha256:
            raise ChunkError("body does not match its SHA-256 (tampered or corrupted)")
        return Body(sender, first, body)

    def expire(self, now: float | None = None) -> int:
        """Forget incomplete bodies older than max_age_s (a sender that died mid-upload)."""
        now = time.monotonic() if now is None else now
        stale = [k for k, p in self._partials.items() if now - p.started > self.max_age_s]
        for key in stale:
            del self._partials[key]
        return len(stale)
