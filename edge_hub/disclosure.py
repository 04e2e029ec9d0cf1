"""Full disclosure: the edge joins the strip chunks a watch streams after its alert (ADR 0002's after-part)
and, once the stream is over, hands them to the cloud as one message, so the strip viewer shows what came
after the event and not only the evidence before it.

Chunks are live QoS 0 messages: a lost one is a gap between segments (said by `complete`), never filled
in. A collection lives in memory only; an edge restarted mid-stream sends nothing for that stream (the
alert strip itself is in the escalation, which is durable).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.messages import EcgStrip

#: A stream is over when it covers what was asked less one chunk (the watch sends ≈ 2 s chunks) …
CHUNK_TOLERANCE_S = 2.5
#: … or when this long has passed beyond the asked duration (a lost last chunk, a watch gone quiet).
GRACE_S = 15.0
MAX_CHUNKS = 256
MAX_SECONDS = 300.0


@dataclass(slots=True)
class Collection:
    alert_id: str
    device_id: str
    patient_id: str
    trace_id: str
    drill: bool
    expected_s: float
    opened_mono: float
    chunks: list[EcgStrip] = field(default_factory=list)
    dropped: int = 0

    def span_s(self) -> float:
        if not self.chunks:
            return 0.0
        return max(c.t0_s + c.duration_s for c in self.chunks) - min(c.t0_s for c in self.chunks)

    def done(self, now_mono: float) -> bool:
        return (self.span_s() >= self.expected_s - CHUNK_TOLERANCE_S
                or now_mono - self.opened_mono >= self.expected_s + GRACE_S)


def join(chunks: list[EcgStrip]) -> tuple[list[EcgStrip], bool]:
    """Chunks in stream order, contiguous ones (same rate, gain and lead; ≤ 1.5 samples apart) joined, overlaps
    trimmed; `contiguous` is False when any gap was left."""
    ordered = sorted(chunks, key=lambda c: c.t0_s)
    segments: list[EcgStrip] = []
    pending: list[np.ndarray] = []
    head: EcgStrip | None = None
    end = 0.0
    contiguous = True

    def flush() -> None:
        if head is not None and pending:
            digital = np.concatenate(pending)
            segments.append(EcgStrip.from_mv(digital / head.gain, fs=head.fs, gain=head.gain, lead=head.lead,
                                             t0_s=head.t0_s))

    for chunk in ordered:
        samples = chunk.to_mv() * chunk.gain
        same_kind = head is not None and (chunk.fs, chunk.gain, chunk.lead) == (head.fs, head.gain, head.lead)
        if head is not None and same_kind and chunk.t0_s <= end + 1.5 / chunk.fs:
            skip = max(0, round((end - chunk.t0_s) * chunk.fs))  # overlap with what is already held
            if skip < len(samples):
                pending.append(samples[skip:])
                end = max(end, chunk.t0_s + len(samples) / chunk.fs)
            continue
        if head is not None:
            contiguous = False
        flush()
        head, pending, end = chunk, [samples], chunk.t0_s + len(samples) / chunk.fs
    flush()
    return segments, contiguous


class DisclosureCollector:
    """Open collections per alert id. Not thread-safe: the edge calls it under its own lock."""

    def __init__(self) -> None:
        self._open: dict[str, Collection] = {}

    def open(self, *, alert_id: str, device_id: str, patient_id: str, trace_id: str, drill: bool,
             expected_s: float, now_mono: float) -> None:
        if alert_id not in self._open:
            self._open[alert_id] = Collection(alert_id, device_id, patient_id, trace_id, drill, expected_s,
                                              now_mono)

    def add(self, alert_id: str | None, device_id: str, strip: EcgStrip) -> bool:
        """Keep a chunk of an open stream; False when no stream of that device and alert is open."""
        collection = self._open.get(alert_id or "")
        if collection is None or collection.device_id != device_id:
            return False
        if len(collection.chunks) >= MAX_CHUNKS or collection.span_s() + strip.duration_s > MAX_SECONDS:
            collection.dropped += 1
            return True
        collection.chunks.append(strip)
        return True

    def due(self, now_mono: float) -> list[tuple[Collection, list[EcgStrip], bool]]:
        """Finished streams, removed: (collection, joined segments, complete). A stream with no chunk at all
        is dropped silently by the caller's count (nothing to disclose)."""
        out = []
        for alert_id, collection in list(self._open.items()):
            if collection.done(now_mono):
                del self._open[alert_id]
                segments, contiguous = join(collection.chunks)
                complete = (contiguous and collection.dropped == 0
                            and collection.span_s() >= collection.expected_s - CHUNK_TOLERANCE_S)
                out.append((collection, segments, complete))
        return out

    def __len__(self) -> int:
        return len(self._open)
