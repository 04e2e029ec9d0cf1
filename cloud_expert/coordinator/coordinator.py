"""Round loop of the coordinator (FedAvg / FedProx, synchronous; hierarchical over edge hubs).

The coordinator owns every publish and receive (Flower's `start()` lesson); the math it applies is the
pure functions of `shared.fl`. It decrypts only the *sum* over all edges, and only when at least
`min_clients` updates went into it — fewer, and the round fails without decrypting anything.

Each new version goes out twice, under one signature: whole (retained, for watches that hold nothing or
fell behind) and as a delta against the previous version (retained, what watches read; ADR 0015). The
global model it keeps is the one the delta rebuilds, so both are the same bytes.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Literal

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_expert.coordinator.keys import CoordinatorKeys
from shared import topics
from shared.chunking import ChunkError, Reassembler, sha256_hex
from shared.crypto.paillier import public_key_to_bytes
from shared.crypto.signing import sign_model
from shared.fl.aggregate import aggregate_mean
from shared.fl.model_delta import DEFAULT_BITS, LOSSLESS, ModelDeltaError, apply_delta, encode_delta, read_header
from shared.fl.updates import apply_update
from shared.fl_codec import CodecError, UpdateCodec, codec_for_round
from shared.identity import Stamper
from shared.messages import (
    AggregateMessage,
    DpConfig,
    ModelDeltaMessage,
    ModelDeltaPayload,
    ModelMessage,
    ModelPayload,
    ReleaseRequest,
    RoundMessage,
    RoundPayload,
    utcnow,
)
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Router, Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundConfig:
    """What every round announces; defaults from the issue (5 epochs, batch 32, lr 0.001, FedAvg)."""

    epochs: int = 5
    batch_size: int = 32
    lr: float = 0.001
    algorithm: Literal["fedavg", "fedprox"] = "fedavg"
    mu: float = 0.0
    clip_norm: float = 1.0
    max_beats: int | None = None
    encrypt: bool = True
    quant_bits: int = 16
    max_clients: int = 64
    min_clients: int = 2
    round_timeout_s: float = 120.0
    grace_s: float = 5.0
    chunk_bytes: int = 64 * 1024
    server_lr: float = 1.0
    mode: Literal["sync", "async"] = "sync"
    buffer_size: int = 0  # async (FedBuff): updates per edge buffer
    max_staleness: int = 4
    #: Release the mean of the last m global models (Polyak–Ruppert tail averaging). Each round's DP noise
    #: is independent, so averaging m iterates damps it ~√m; pure post-processing, no privacy cost. 0/1: off.
    average_last: int = 0
    #: Each new version also goes out as a delta against the previous one (`shared.fl.model_delta`): int8
    #: block-quantized by default (the published model is what the delta rebuilds), 0 = lossless XOR.
    model_delta_bits: int = DEFAULT_BITS


@dataclass(frozen=True, slots=True)
class Release:
    """A round that asks every selected client for a bounded, noised vector to be summed (not a trained delta):
    the federated additive model's count table and gradient sums (`shared.fl.gam`, `run_release`)."""

    request: ReleaseRequest
    params: int  # length of each client's vector
    clip: float  # one example's bound within it: the sum's sensitivity
    bound: float  # |value| bound of one client's whole vector: the packing range
    dp: DpConfig  # the noise of this release's sum (σ), split in shares for k clients
    timeout_s: float | None = None  # its deadline, when not the config's (a large release takes longer to encrypt)


@dataclass(frozen=True, slots=True)
class VersionDelta:
    """How version `version` was reached from `base_version`: the delta bytes watches holding the base apply."""

    version: int
    base_version: int
    delta: bytes


def signed_payloads(signing: Ed25519PrivateKey, vector: np.ndarray, *, version: int, round_id: int,
                    delta: VersionDelta | None = None) -> tuple[ModelPayload, ModelDeltaPayload | None]:
    """The full model and (when `delta` is this version's) its delta, both under the one signature over the
    full model's metadata. A function, not a method, so `bench/model_delta.py` measures the very bytes sent."""
    blob = np.asarray(vector, dtype="<f4").tobytes()
    signed = sign_model(signing, blob, version=version, round=max(round_id, 0))
    signature_b64 = base64.b64encode(signed.signature or b"").decode()
    full = ModelPayload(version=version, round_id=round_id, sha256=signed.metadata.sha256,
                        signature_b64=signature_b64, model_b64=base64.b64encode(blob).decode())
    if delta is None or delta.version != version:
        return full, None
    step = ModelDeltaPayload(version=version, round_id=round_id, sha256=signed.metadata.sha256,
                             signature_b64=signature_b64, base_version=delta.base_version,
                             base_sha256=read_header(delta.delta).base_sha256,
                             delta_b64=base64.b64encode(delta.delta).decode())
    return full, step


@dataclass
class RoundRecord:
    round: int
    status: str  # ok | too_few | failed
    clients: int
    contributors: list[str]
    seconds: float
    aggregate_bytes: int
    epsilon: float | None
    delta: float | None
    metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Coordinator:
    def __init__(self, settings: Settings, transport: Transport, *, keys: CoordinatorKeys, initial: np.ndarray,
                 config: RoundConfig, participants: list[str], dp: DpConfig | None = None,
                 epsilon_after: Callable[[int], float | None] | None = None,
                 evaluate: Callable[[np.ndarray], dict[str, Any]] | None = None,
                 counters: Counters | None = None, quant_range: float | None = None,
                 federation: str = "watch-detector") -> None:
        self.settings = settings
        self.federation = federation
        self.keys = keys
        self.vector = np.asarray(initial, dtype=np.float32).copy()
        self.version = 0
        self.config = config
        self.participants = participants
        self.dp = dp or DpConfig()
        self.quant_range = quant_range
        self._epsilon_after = epsilon_after or (lambda _rounds: None)
        self._evaluate = evaluate
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self.stamp = Stamper("fl-coordinator")
        self._reassembler = Reassembler()
        self._lock = threading.Condition()
        self._aggregates: dict[str, tuple[bytes, int, list[str]]] = {}  # edge → (body, clients, contributors)
        self._buffers: list[tuple[str, bytes, int, list[str]]] = []  # async: edge buffers in arrival order
        self._round_id = -1
        self._codec: UpdateCodec | None = None
        self.records: list[RoundRecord] = []
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, config.average_last))
        self._delta: VersionDelta | None = None  # how the current version was reached from the previous one

    def start(self) -> None:
        self.router.on(topics.fl_aggregate(self.federation, topics.ANY, topics.ANY), AggregateMessage,
                       self.on_aggregate)

    def stop(self) -> None:
        """Stop listening and end the router's retry thread (the transport is the caller's to stop)."""
        self.router.close()

    # -- publishing ------------------------------------------------------------------------------
    def publish_model(self) -> None:
        """The full model first, then its delta: a watch that cannot apply the delta and turns to the full topic
        finds this version already retained there."""
        full, delta = signed_payloads(self.keys.signing, self.vector, version=self.version, round_id=self._round_id,
                                      delta=self._delta)
        self.router.publish(topics.fl_model(self.federation), ModelMessage(**self.stamp(patient_id=None),
                                                                           payload=full), qos=1, retain=True)
        if delta is not None:
            self.router.publish(topics.fl_model_delta(self.federation),
                                ModelDeltaMessage(**self.stamp(patient_id=None), payload=delta), qos=1, retain=True)

    def build_spec(self, round_id: int, release: Release | None = None) -> RoundPayload:
        """The announcement round `round_id` would carry (also what clients precompute against)."""
        c = self.config
        public = self.keys.paillier.public_key
        spec = RoundPayload(
            round_id=round_id, model_version=self.version,
            model_sha256=sha256_hex(self.vector.astype("<f4").tobytes()),
            params=release.params if release else int(self.vector.size),
            participants=self.participants, algorithm=c.algorithm,
            mu=c.mu, epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, max_beats=c.max_beats,
            clip_norm=release.clip if release else c.clip_norm, dp=release.dp if release else self.dp,
            encrypt=c.encrypt,
            public_key_b64=base64.b64encode(public_key_to_bytes(public)).decode() if c.encrypt else None,
            mode=c.mode, buffer_size=c.buffer_size, max_staleness=c.max_staleness,
            quant_bits=c.quant_bits, quant_range=release.bound if release else self.quant_range,
            max_clients=c.max_clients, min_clients=c.min_clients,
            deadline=utcnow() + timedelta(seconds=self._timeout_s(release)), chunk_bytes=c.chunk_bytes,
            task="release" if release else "train", release=release.request if release else None,
        )
        return spec

    def _timeout_s(self, release: Release | None) -> float:
        return release.timeout_s if release and release.timeout_s else self.config.round_timeout_s

    def _announce(self, round_id: int, release: Release | None = None) -> RoundPayload:
        spec = self.build_spec(round_id, release)
        with self._lock:
            self._round_id = round_id
            self._aggregates.clear()
            self._codec = codec_for_round(spec, private_key=self.keys.paillier.private_key)
        self.router.publish(topics.fl_round(self.federation), RoundMessage(**self.stamp(patient_id=None), payload=spec),
                            qos=1, retain=True)
        return spec

    # -- receiving -------------------------------------------------------------------------------
    def on_aggregate(self, parts: topics.TopicParts, msg: AggregateMessage) -> None:
        edge = f"{parts.site}/{parts.device_id}"
        try:
            body = self._reassembler.add(edge, msg.payload)
        except ChunkError as exc:
            self.counters.inc("fl.rejected_aggregate")
            log.warning("aggregate chunk rejected", extra={"edge": edge, "why": str(exc)})
            return
        if body is None:
            return
        with self._lock:
            if self.config.mode == "async":
                if body.meta.base_version < self.version - self.config.max_staleness:
                    self.counters.inc("fl.stale_aggregate")
                    return
                self._buffers.append((edge, body.data, body.meta.clients, list(body.meta.contributors)))
                self._lock.notify_all()
                return
            if body.meta.round_id != self._round_id or body.meta.base_version != self.version:
                self.counters.inc("fl.stale_aggregate")
                return
            if edge in self._aggregates:
                self.counters.inc("fl.duplicate_aggregate")
                return
            self._aggregates[edge] = (body.data, body.meta.clients, list(body.meta.contributors))
            self._lock.notify_all()

    # -- the round -------------------------------------------------------------------------------
    def run_async_step(self, step: int) -> RoundRecord:
        """FedBuff (Nguyen et al. 2022): apply the next edge buffer of ≥ k staleness-weighted updates as
        soon as it arrives — no waiting for every client; slow devices contribute to later versions."""
        started = time.perf_counter()
        spec = self._announce(step)
        deadline = time.monotonic() + self.config.round_timeout_s + self.config.grace_s
        with self._lock:
            while not self._buffers and time.monotonic() < deadline:
                self._lock.wait(0.05)
            item = self._buffers.pop(0) if self._buffers else None
            codec = self._codec
        assert codec is not None
        epsilon = self._epsilon_after(self._released() + 1)
        record = RoundRecord(round=step, status="too_few", clients=0, contributors=[], seconds=0.0,
                             aggregate_bytes=0, epsilon=epsilon, delta=self.dp.delta)
        if item is not None:
            edge, body, clients, contributors = item
            record.clients, record.aggregate_bytes = clients, len(body)
            record.contributors = [f"{edge.split('/')[0]}/{d}" for d in contributors]
            if clients >= spec.min_clients:
                try:
                    mean = aggregate_mean(codec.decode_sum(body, clients), clients)
                    self._advance(mean)
                    record.status = "ok"
                except CodecError as exc:
                    record.status = "failed"
                    log.error("buffer could not be decoded", extra={"step": step, "why": str(exc)})
        if record.status != "ok":
            record.epsilon = self._epsilon_after(self._released())
        record.seconds = round(time.perf_counter() - started, 3)
        self.records.append(record)
        return record

    def advance(self, target: np.ndarray) -> None:
        """Publish a model the coordinator derived itself, between rounds (the trees' next split), as the next
        signed version."""
        self._advance_to(target)

    def _advance(self, mean: np.ndarray) -> None:
        self._advance_to(apply_update(self.vector, mean, server_lr=self.config.server_lr))

    def _advance_to(self, target: np.ndarray) -> None:
        """Publish `target` (as the delta rebuilds it) as the next version, and train on from it."""
        target = np.asarray(target, dtype=np.float32)
        try:
            delta = encode_delta(self.vector, target, bits=self.config.model_delta_bits)
        except ModelDeltaError as exc:  # a non-finite step cannot be quantized; the lossless mode takes any bits
            log.error("model step not quantizable: lossless delta",
                      extra={"version": self.version + 1, "why": str(exc)})
            self.counters.inc("fl.model_delta_lossless_fallback")
            delta = encode_delta(self.vector, target, bits=LOSSLESS)
        # publish what the delta rebuilds (the watches' own function on the same bytes), and train on from it
        self.vector = apply_delta(self.vector, delta)
        self._delta = VersionDelta(version=self.version + 1, base_version=self.version, delta=delta)
        self.version += 1
        self._recent.append(self.vector.copy())
        self.publish_model()

    @property
    def averaged_over(self) -> int:
        """How many global models `release_vector` averages (1: the newest alone)."""
        return len(self._recent) if self.config.average_last > 1 and self._recent else 1

    def release_vector(self) -> np.ndarray:
        """The model to ship: the tail average of the last `average_last` global models (the newest alone
        when averaging is off). Watches keep training on the newest; the average is for inference."""
        if self.averaged_over == 1:
            return self.vector.copy()
        return np.mean(np.stack(self._recent), axis=0).astype(np.float32)

    def _released(self) -> int:
        """Rounds whose aggregate was decrypted and released: what the privacy ledger is charged for."""
        return sum(r.status == "ok" for r in self.records)

    def retire(self) -> None:
        """Clear the federation's retained round, model and delta, so a later federation starts clean."""
        for topic in (topics.fl_round(self.federation), topics.fl_model(self.federation),
                      topics.fl_model_delta(self.federation)):
            self.router.transport.publish(topic, b"", qos=1, retain=True)

    def run_round(self, round_id: int) -> RoundRecord:
        """One FedAvg round: the decrypted sum's mean is the step (server learning rate applied)."""
        return self._run(round_id, None, lambda total, clients: apply_update(
            self.vector, aggregate_mean(total, clients), server_lr=self.config.server_lr))

    def run_release(self, round_id: int, release: Release,
                    step: Callable[[np.ndarray, int], np.ndarray | None]) -> RoundRecord:
        """One release round: every selected client sends its noised vector for `release`, the edges sum them
        blind, and `step(decrypted sum, clients)` gives the next model, published and signed like any (None: the
        sum is the caller's to use, and the model stays — the trees decide after the release, `advance`). Below k
        reporters nothing is decrypted and the model stays (the caller sees `too_few`)."""
        if self.config.mode != "sync":
            raise ValueError("release rounds are synchronous: every sum belongs to exactly one model version")
        return self._run(round_id, release, step)

    def _run(self, round_id: int, release: Release | None,
             step: Callable[[np.ndarray, int], np.ndarray | None]) -> RoundRecord:
        started = time.perf_counter()
        spec = self._announce(round_id, release)
        expected = len(self.participants)
        sites = {p.split("/", 1)[0] for p in self.participants}
        deadline = time.monotonic() + self._timeout_s(release) + self.config.grace_s

        def waiting() -> bool:
            """Until every participant reported, or every site's edge sent its sum: an edge closes its round
            without the clients its selection policy did not wait for (low battery, busy, slow)."""
            reported = sum(c for _, c, _ in self._aggregates.values())
            return reported < expected and not sites <= {edge.split("/", 1)[0] for edge in self._aggregates}

        with self._lock:
            while waiting() and time.monotonic() < deadline:
                self._lock.wait(0.05)
            aggregates = dict(self._aggregates)
            codec = self._codec
        assert codec is not None
        clients = sum(c for _, c, _ in aggregates.values())
        contributors = sorted(f"{edge.split('/')[0]}/{d}" for edge, (_, _, ds) in aggregates.items() for d in ds)
        size = sum(len(b) for b, _, _ in aggregates.values())
        epsilon = self._epsilon_after(self._released() + 1)
        record = RoundRecord(round=round_id, status="ok", clients=clients, contributors=contributors, seconds=0.0,
                             aggregate_bytes=size, epsilon=epsilon, delta=spec.dp.delta)
        if clients < spec.min_clients:
            record.status, record.epsilon = "too_few", self._epsilon_after(self._released())
            log.warning("round below k: nothing decrypted", extra={"round": round_id, "clients": clients})
        else:
            try:
                total = None
                for body, _, _ in aggregates.values():
                    total = body if total is None else codec.add_sums(total, body)
                assert total is not None
                following = step(codec.decode_sum(total, clients), clients)
                if following is not None:
                    self._advance_to(following)
            except CodecError as exc:
                record.status = "failed"
                log.error("aggregate could not be decoded", extra={"round": round_id, "why": str(exc)})
        record.seconds = round(time.perf_counter() - started, 3)
        if record.status == "ok" and self._evaluate is not None:
            record.metrics = self._evaluate(self.vector)
        self.records.append(record)
        return record
