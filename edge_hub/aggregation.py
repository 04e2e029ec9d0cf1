"""The edge's blind aggregator: sums its site's client updates without being able to read them.

It only ever holds what the round announcement carries — the public key — and adds ciphertexts
(`UpdateCodec.add`). A client's update is counted once per round however often it arrives; a
tampered, malformed or stale update is rejected and counted; the round closes when every selected
client of this site has reported, or at the deadline with whoever did, and the sum goes to the cloud.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_hub.registry import DeviceRegistry, follow
from shared import topics
from shared.chunking import ChunkError, Reassembler, chunk_payloads
from shared.fl.selection import choose_for_training
from shared.fl_codec import CodecError, UpdateCodec
from shared.identity import Stamper
from shared.messages import AggregateMessage, RoundMessage, RoundPayload, UpdateMessage, utcnow
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Router, Transport

log = logging.getLogger(__name__)

CodecFactory = Callable[[RoundPayload], UpdateCodec]


@dataclass(slots=True)
class _Round:
    spec: RoundPayload
    codec: UpdateCodec
    expected: set[str]  # this site's selected clients: updates from others are refused
    wait_for: set[str] = field(default_factory=set)  # those the round waits for (taken, synchronous)
    total: bytes | None = None
    contributors: list[str] = field(default_factory=list)
    samples: int = 0
    closed: bool = False


class EdgeAggregator:
    def __init__(self, settings: Settings, transport: Transport, *, edge_id: str, codec_factory: CodecFactory,
                 federation: str = "watch-detector", counters: Counters | None = None,
                 registry: DeviceRegistry | None = None) -> None:
        """`registry`: the hub's live device registry when they share a process; otherwise this aggregator
        follows the site's capabilities itself."""
        self.settings = settings
        self.federation = federation
        self.edge_id = edge_id
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self._codec_factory = codec_factory
        self._reassembler = Reassembler()
        self._lock = threading.RLock()
        self._round: _Round | None = None
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.stamp = Stamper(edge_id)
        self.bytes_out = 0
        self._follow = registry is None
        self.registry = registry if registry is not None else DeviceRegistry()

    def start(self) -> None:
        if self._follow:
            follow(self.router, self.settings.site, self.registry)
        self.router.on(topics.fl_round(self.federation), RoundMessage, self.on_round)
        self.router.on(topics.fl_update(self.federation, self.settings.site, topics.ANY), UpdateMessage, self.on_update)
        self._timer = threading.Thread(target=self._deadline_loop, name=f"{self.edge_id}-fl", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        self.router.close()
        if self._timer is not None:
            self._timer.join(timeout=2)

    # -- handlers --------------------------------------------------------------------------------
    def on_round(self, parts: topics.TopicParts, msg: RoundMessage) -> None:
        spec = msg.payload
        with self._lock:
            if self._round is not None and spec.round_id <= self._round.spec.round_id:
                return  # a retained re-delivery of a round we already run or ran
            mine = {p.split("/", 1)[1] for p in spec.participants if p.split("/", 1)[0] == self.settings.site}
            wait_for = self._select(spec, mine)
            previous = self._round
            self._round = _Round(spec, self._codec_factory(spec), mine, wait_for)
            if spec.mode == "async" and previous is not None and not previous.closed:
                # FedBuff: a buffer outlives model versions — keep what it holds, under the new announcement
                self._round.total, self._round.samples = previous.total, previous.samples
                self._round.contributors = previous.contributors
        log.info("fl round opened", extra={"round": spec.round_id, "expected": len(mine), "waited_for": len(wait_for),
                                           "edge": self.edge_id})

    def _select(self, spec: RoundPayload, mine: set[str]) -> set[str]:
        """The clients this round waits for: each selected one the policy takes synchronously (logged with why)."""
        wait_for: set[str] = set()
        for device in sorted(mine):
            choice = choose_for_training(self.registry.get(device), spec.selection)
            if choice.take and choice.mode == "sync":
                wait_for.add(device)
                continue
            self.counters.inc("fl.selection.async" if choice.take else "fl.selection.excluded")
            log.info("fl client not waited for", extra={"round": spec.round_id, "device": device,
                                                        "taken": choice.take, "reason": choice.reason})
        return wait_for

    def on_update(self, parts: topics.TopicParts, msg: UpdateMessage) -> None:
        try:
            body = self._reassembler.add(msg.source, msg.payload)
        except ChunkError as exc:
            self._reject("chunk", msg.source, str(exc))
            return
        if body is None:
            return
        with self._lock:
            current = self._round
            if current is None or current.closed or not self._fresh(current.spec, body.meta.round_id,
                                                                     body.meta.base_version):
                self._reject("stale", msg.source, f"round {body.meta.round_id} / v{body.meta.base_version} "
                                                  "is not open here")
                return
            if body.meta.encrypted != current.spec.encrypt or body.meta.clients != 1:
                self._reject("malformed", msg.source, "not a single client update of this round's kind")
                return
            if msg.source in current.contributors:
                self.counters.inc("fl.duplicate_update")
                return
            if current.expected and msg.source not in current.expected:
                self._reject("unexpected", msg.source, "not selected for this round")
                return
            try:
                current.total = current.codec.add(current.total, body.data)
            except CodecError as exc:
                self._reject("malformed", msg.source, str(exc))
                return
            current.contributors.append(msg.source)
            current.samples += body.meta.samples
            self.counters.inc("fl.accepted_update")
            if current.spec.mode == "async":
                complete = len(current.contributors) >= current.spec.buffer_size
            else:
                complete = bool(current.wait_for) and current.wait_for <= set(current.contributors)
        if complete:
            self.close_round()

    @staticmethod
    def _fresh(spec: RoundPayload, round_id: int, base_version: int) -> bool:
        """Sync: exactly this round's model. Async (FedBuff): any recent base within the staleness bound;
        the client already weighted its update by its staleness."""
        if spec.mode == "async":
            return round_id <= spec.round_id and base_version >= spec.model_version - spec.max_staleness
        return round_id == spec.round_id and base_version == spec.model_version

    def _reject(self, reason: str, source: str, detail: str) -> None:
        self.counters.inc(f"fl.rejected_{reason}")
        log.warning("fl update rejected", extra={"reason": reason, "source": source, "detail": detail[:200]})

    # -- closing ---------------------------------------------------------------------------------
    def _deadline_loop(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                due = self._round is not None and not self._round.closed and utcnow() >= self._round.spec.deadline
            if due:
                self.close_round()
            self._reassembler.expire()

    def close_round(self) -> None:
        with self._lock:
            current = self._round
            if current is None or current.closed:
                return
            current.closed = True
            total, contributors, samples = current.total, list(current.contributors), current.samples
            spec = current.spec
        if spec.mode == "async":
            with self._lock:  # FedBuff: the next buffer opens at once, updates keep flowing
                if self._round is current:
                    self._round = _Round(spec, current.codec, current.expected, current.wait_for)
        if total is None:
            log.info("fl round closed with no updates", extra={"round": spec.round_id, "edge": self.edge_id})
            return
        chunks = chunk_payloads(total, chunk_bytes=spec.chunk_bytes, round_id=spec.round_id,
                                base_version=spec.model_version, encrypted=spec.encrypt,
                                clients=len(contributors), contributors=contributors, samples=samples)
        topic = topics.fl_aggregate(self.federation, self.settings.site, self.edge_id)
        for chunk in chunks:
            self.router.publish(topic, AggregateMessage(**self.stamp(patient_id=None), payload=chunk), qos=1)
        self.bytes_out += len(total)
        self.counters.inc("fl.aggregates")
        log.info("fl aggregate sent", extra={"round": spec.round_id, "clients": len(contributors),
                                             "bytes": len(total), "edge": self.edge_id})
