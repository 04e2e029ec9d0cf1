"""The watch's federated-learning client: data stays, the model moves.

On a round announcement it trains the current signed global model on the wearer's own beats, then
sends only the update: delta → L2 clip → its share of the round's DP noise → (packed, Paillier-
encrypted) → chunks to its edge hub. Global models are installed only when signed by the coordinator
and newer than the one it has (unsigned, wrongly signed, tampered or stale models are refused).

Downloads are deltas (ADR 0015): a watch reads each new version as a step from the one it holds and
rebuilds the signed model from it. It reads the full model only while it holds none, or when a signed
newer version's delta does not fit what it holds, and stops reading it once it has caught up.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared import topics
from shared.chunking import chunk_payloads
from shared.crypto.paillier import precompute_noise
from shared.crypto.signing import (
    ModelMetadata,
    ModelVerificationError,
    SignedModel,
    StaleModelError,
    verify_metadata,
    verify_model,
)
from shared.fl.aggregate import staleness_weight
from shared.fl.model_delta import apply_delta, vector_bytes
from shared.fl.noise import gaussian_share, laplace_share
from shared.fl.selection import choose_for_training
from shared.fl.updates import clip_by_l1, clip_by_l2, delta
from shared.fl_codec import PackedPaillierCodec, UpdateCodec, codec_for_round
from shared.identity import Stamper
from shared.messages import (
    CapabilitiesPayload,
    DpConfig,
    ModelDeltaMessage,
    ModelMessage,
    RoundMessage,
    RoundPayload,
    UpdateMessage,
    encode,
    utcnow,
)
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Router, Transport

log = logging.getLogger(__name__)


class Learner(Protocol):
    """What the FL client needs of a model: load a flat parameter vector, train, hand it back."""

    def load_vector(self, vector: np.ndarray) -> None: ...

    def vector(self) -> np.ndarray: ...

    def train(self, spec: RoundPayload, global_vector: np.ndarray) -> int:
        """Train locally from the loaded parameters; returns the number of training examples used."""


class Releaser(Learner, Protocol):
    """A learner that also answers release rounds (`RoundPayload.task == "release"`): the vector asked for, summed
    over its own examples with each example's part bounded by the round's `clip_norm`, and how many examples."""

    def release(self, spec: RoundPayload, global_vector: np.ndarray) -> tuple[np.ndarray, int]: ...


def noise_share(dp: DpConfig, params: int, rng: np.random.Generator) -> np.ndarray:
    """This client's share of the aggregate noise: the shares of `planned_clients` clients sum to it.

    Gaussian N(0, σ²/K) each; Laplace as Gamma(1/K, b) − Gamma(1/K, b) each, whose sum over K clients is
    exactly Laplace(b) (infinite divisibility), so the *aggregate* meets the round's (ε, δ).
    """
    if dp.mechanism == "gaussian":
        return gaussian_share(params, dp.noise_scale, dp.planned_clients, rng)
    if dp.mechanism == "laplace":
        return laplace_share(params, dp.noise_scale, dp.planned_clients, rng)
    return np.zeros(params)


@dataclass(frozen=True, slots=True)
class SentUpdate:
    round_id: int
    samples: int
    bytes: int
    train_s: float
    encode_s: float
    norm: float
    staleness: int = 0
    #: CPU seconds of the thread that trained and encoded (`time.thread_time`). The wall seconds above also
    #: count waiting: simulated watches sharing a process take turns at `learner.TRAIN_LOCK`, and share cores
    #: with everything else; the CPU seconds are the watch's own work.
    train_cpu_s: float = 0.0
    encode_cpu_s: float = 0.0


class FlClient:
    def __init__(self, settings: Settings, transport: Transport, *, device_id: str, learner: Learner,
                 verify_key: Ed25519PublicKey, counters: Counters | None = None, seed: int | None = 0,
                 codec_factory: Callable[[RoundPayload], UpdateCodec] | None = None, federation: str = "watch-detector",
                 after_install: Callable[[np.ndarray], None] | None = None, slowdown_s: float = 0.0,
                 own_state: Callable[[], CapabilitiesPayload | None] | None = None) -> None:
        """`own_state`: this device's current capabilities (battery, load), judged by the round's selection
        policy before it trains (`shared.fl.selection`); without it the client trains whenever selected.
        `seed`: of the noise shares and the rounding; None (OS entropy) for a model that is released — noise
        from a readable seed could be regenerated and subtracted."""
        self.settings = settings
        self.federation = federation
        self.device_id = device_id
        self.learner = learner
        self.verify_key = verify_key
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self.stamp = Stamper(device_id)
        self._rng = np.random.default_rng(seed)
        self._codec_factory = codec_factory or (lambda spec: codec_for_round(spec, rng=self._rng))
        self._after_install = after_install
        self._lock = threading.Lock()
        self.version: int | None = None
        self.global_vector: np.ndarray | None = None
        self.model_sha256: str | None = None  # of the installed model: a delta must name it as its base
        self._full_open = False  # reading the full-model topic (changed only under `router.exclusive()`)
        self._full_until = 0  # ...until a version at least this new is installed
        self._pending: RoundPayload | None = None
        self._done_rounds: set[int] = set()
        self.sent: list[SentUpdate] = []
        self._noise_pool: tuple[str, list[int]] | None = None  # (key id, r^n values): secret, single-use
        self.paused = False  # a test (or a flat battery) can make a client drop out
        self.slowdown_s = slowdown_s  # a low-compute device (async rounds) takes this much longer
        self._own_state = own_state
        self._busy = False
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self.fetch_full()  # nothing held yet: the retained full model first, then only deltas
        self.router.on(topics.fl_model_delta(self.federation), ModelDeltaMessage, self.on_model_delta)
        self.router.on(topics.fl_round(self.federation), RoundMessage, self.on_round)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Take no new rounds and wait for a local training in progress; False if it is still running.

        Call before the process exits: torch must not be mid-operation in a thread at interpreter exit.
        """
        self.router.close()
        with self._lock:
            self.paused = True
            worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
            return not worker.is_alive()
        return True

    # -- model installation ----------------------------------------------------------------------
    def fetch_full(self, *, at_least: int | None = None) -> None:
        """Read the full-model topic (its retained model arrives at once) until a version ≥ `at_least` is
        installed; by default, any version newer than the one held."""
        with self.router.exclusive():
            with self._lock:
                wanted = at_least if at_least is not None else (0 if self.version is None else self.version + 1)
                self._full_until = max(self._full_until, wanted)
                if self._full_open:
                    return
                self._full_open = True
            self.counters.inc("fl.model_full_reads")
            self.router.on(topics.fl_model(self.federation), ModelMessage, self.on_model)

    def _stop_full_when_caught_up(self) -> None:
        with self.router.exclusive():
            with self._lock:
                if not self._full_open or self.version is None or self.version < self._full_until:
                    return
                self._full_open = False
            self.router.off(topics.fl_model(self.federation))

    def on_model(self, parts: topics.TopicParts, msg: ModelMessage) -> None:
        """A full model: read only while this watch holds none or could not apply a newer version's delta."""
        p = msg.payload
        self.counters.inc("fl.model_bytes_received.full", len(encode(msg)))
        try:
            blob = base64.b64decode(p.model_b64, validate=True)
            signed = SignedModel(blob=blob, metadata=ModelMetadata(version=p.version, round=max(p.round_id, 0),
                                                                   sha256=p.sha256),
                                 signature=base64.b64decode(p.signature_b64) if p.signature_b64 else None)
            verify_model(self.verify_key, signed, current_version=self.version)
        except ModelVerificationError as exc:
            self.counters.inc(f"fl.model_refused.{type(exc).__name__}")
            log.warning("global model refused", extra={"device": self.device_id, "why": str(exc)})
            return
        except ValueError as exc:
            self.counters.inc("fl.model_refused.malformed")
            log.warning("global model refused", extra={"device": self.device_id, "why": str(exc)})
            return
        self._install(np.frombuffer(blob, dtype="<f4").astype(np.float32), p.version, p.sha256, via="full")

    def on_model_delta(self, parts: topics.TopicParts, msg: ModelDeltaMessage) -> None:
        """A new version as a step from the previous one: verified as the full model would be, on the rebuilt bytes.

        Unsigned, wrongly signed and stale deltas are refused and change nothing. A signed, newer delta this
        watch cannot use (no model, another base, bytes that do not rebuild the signed sha256) is refused too,
        and sends the watch to the full model of that version.
        """
        p = msg.payload
        self.counters.inc("fl.model_bytes_received.delta", len(encode(msg)))
        with self._lock:
            version, sha, held = self.version, self.model_sha256, self.global_vector
        if version == p.version and sha == p.sha256:
            self.counters.inc("fl.model_delta_duplicate")  # the retained delta again, on every (re)subscribe
            return
        try:
            metadata = ModelMetadata(version=p.version, round=max(p.round_id, 0), sha256=p.sha256)
            signature = base64.b64decode(p.signature_b64, validate=True) if p.signature_b64 else None
            verify_metadata(self.verify_key, metadata, signature)  # before any work, and before any full read
            if version is not None and p.version <= version:
                raise StaleModelError(f"global model version {p.version} is not newer than {version}")
        except ModelVerificationError as exc:
            self._refuse_delta(type(exc).__name__, str(exc))
            return
        except ValueError as exc:
            self._refuse_delta("malformed", str(exc))
            return
        if held is None or sha is None:
            self._refuse_delta("no_base", "no model held yet", fetch=p.version)
            return
        if p.base_version != version or p.base_sha256 != sha:
            self._refuse_delta("base_mismatch", f"delta from {p.base_version}, holding {version}", fetch=p.version)
            return
        try:
            vector = apply_delta(held, base64.b64decode(p.delta_b64, validate=True))
            verify_model(self.verify_key, SignedModel(blob=vector_bytes(vector), metadata=metadata,
                                                      signature=signature), current_version=version)
        except ModelVerificationError as exc:  # rebuilt bytes that are not the signed model
            self._refuse_delta(type(exc).__name__, str(exc), fetch=p.version)
            return
        except ValueError as exc:  # ModelDeltaError, bad base64
            self._refuse_delta("malformed", str(exc), fetch=p.version)
            return
        self._install(vector, p.version, p.sha256, via="delta")

    def _refuse_delta(self, reason: str, why: str, *, fetch: int | None = None) -> None:
        self.counters.inc(f"fl.model_delta_refused.{reason}")
        log.warning("model delta refused", extra={"device": self.device_id, "reason": reason, "why": why[:300],
                                                  "reads_full": fetch is not None})
        if fetch is not None:
            self.fetch_full(at_least=fetch)

    def _install(self, vector: np.ndarray, version: int, sha256: str, *, via: str) -> None:
        with self._lock:
            # counted before the version shows: whoever sees the new version also sees it counted
            self.counters.inc("fl.model_installed")
            self.counters.inc(f"fl.model_installed_{via}")
            self.version, self.global_vector, self.model_sha256 = version, vector, sha256
            busy = self._busy
        if not busy:  # never swap weights under a running local training; it reloads the newest when done
            self.learner.load_vector(vector)
        if self._after_install is not None:
            self._after_install(vector)
        self._stop_full_when_caught_up()  # whichever way it got there
        self._maybe_train()

    # -- rounds ----------------------------------------------------------------------------------
    def on_round(self, parts: topics.TopicParts, msg: RoundMessage) -> None:
        spec = msg.payload
        selected = not spec.participants or f"{self.settings.site}/{self.device_id}" in spec.participants
        if not selected:
            return
        with self._lock:
            self._pending = spec
        self._maybe_train()

    def _maybe_train(self) -> None:
        state = self._own_state() if self._own_state is not None else None
        with self._lock:
            spec = self._pending
            if (spec is None or self.paused or self._busy or spec.round_id in self._done_rounds
                    or self.global_vector is None or self.version is None or utcnow() >= spec.deadline):
                return
            if spec.mode == "sync" and self.version != spec.model_version:
                return  # sync rounds train from exactly the announced model
            if spec.mode == "async" and self.version < spec.model_version - spec.max_staleness:
                return
            self._done_rounds.add(spec.round_id)
            if self._own_state is not None:
                choice = choose_for_training(state, spec.selection)
                if not choice.take:
                    self.counters.inc("fl.declined")
                    log.info("fl round declined", extra={"device": self.device_id, "round": spec.round_id,
                                                         "reason": choice.reason})
                    return
            self._busy = True
            global_vector = self.global_vector.copy()
            base_version = self.version
            self._worker = threading.Thread(target=self._train_and_send, args=(spec, global_vector, base_version),
                                            daemon=True, name=f"fl-{self.device_id}-r{spec.round_id}")
            self._worker.start()

    def _train_and_send(self, spec: RoundPayload, global_vector: np.ndarray, base_version: int) -> None:
        try:
            self.send_update(spec, global_vector, base_version=base_version)
        except Exception:
            self.counters.inc("fl.client_errors")
            log.exception("local training failed", extra={"device": self.device_id, "round": spec.round_id})
        finally:
            with self._lock:
                self._busy = False
        # a round announced while this one was still training must not be skipped (and, async, FedBuff:
        # an idle client picks up the newest buffer straight away)
        self._maybe_train()

    def _take_pool(self, codec: PackedPaillierCodec) -> list[int] | None:
        with self._lock:
            pool, self._noise_pool = self._noise_pool, None
        if pool is None or pool[0] != codec.public_key.key_id:
            return None
        return pool[1][: codec.ciphertexts_per_update]

    def _release(self, spec: RoundPayload, global_vector: np.ndarray) -> tuple[np.ndarray, int]:
        """The vector a release round asks for. One that does not fit the round's length is an error (nothing
        sent). Values beyond the announced packing range, less room for the noise share, are clipped to it —
        counted and logged, and still sent: refusing would make *whether* a watch answers depend on its data, and
        clipping each value is a contraction, so one beat still moves the vector by at most the round's clip."""
        release = getattr(self.learner, "release", None)
        if release is None:
            raise TypeError(f"{type(self.learner).__name__} cannot answer release rounds")
        vector, samples = release(spec, global_vector)
        vector = np.asarray(vector, dtype=np.float64).ravel()
        if vector.size != spec.params:
            raise ValueError(f"release of {vector.size} values, the round announced {spec.params}")
        if not np.all(np.isfinite(vector)):
            raise ValueError("release with non-finite values")
        share_std = spec.dp.noise_scale / np.sqrt(spec.dp.planned_clients) if spec.dp.mechanism != "none" else 0.0
        room = max((spec.quant_range or spec.clip_norm) - 6.0 * share_std, 0.0)
        outside = int(np.sum(np.abs(vector) > room))
        if outside:
            self.counters.inc("fl.release_clipped")
            log.warning("release values clipped to the round's range", extra={
                "device": self.device_id, "round": spec.round_id, "values": outside, "range": room,
                "why": "a client bound sized for smaller wearers"})
            vector = np.clip(vector, -room, room)
        return vector, samples

    def prepare(self, spec: RoundPayload) -> float:
        """The offline phase: precompute the encryption randomness for the next update (idle time on a
        real watch). Returns the seconds it took; encryption during the round is then nearly free."""
        codec = self._codec_factory(spec)
        if not isinstance(codec, PackedPaillierCodec):
            return 0.0
        started = time.perf_counter()
        values = precompute_noise(codec.public_key, codec.ciphertexts_per_update)
        with self._lock:
            self._noise_pool = (codec.public_key.key_id, values)
        return time.perf_counter() - started

    def send_update(self, spec: RoundPayload, global_vector: np.ndarray, *,
                    base_version: int | None = None) -> SentUpdate:
        started, started_cpu = time.perf_counter(), time.thread_time()
        base = spec.model_version if base_version is None else base_version
        self.learner.load_vector(global_vector)
        if spec.task == "release":
            clipped, samples = self._release(spec, global_vector)
            norm = float(np.linalg.norm(clipped))
        else:
            samples = self.learner.train(spec, global_vector)
        if self.slowdown_s:
            time.sleep(self.slowdown_s)
        trained, trained_cpu = time.perf_counter(), time.thread_time()
        if spec.task != "release":
            # Laplace needs L1 sensitivity, Gaussian L2: clip in the norm the round's mechanism is calibrated for
            clip = clip_by_l1 if spec.dp.mechanism == "laplace" else clip_by_l2
            clipped, norm = clip(delta(self.learner.vector(), global_vector), spec.clip_norm)
        with self._lock:
            latest, target = self.version or base, self._pending or spec
        staleness = max(0, latest - base) if spec.mode == "async" else 0
        if spec.mode == "async":  # FedBuff: stale updates count less; a weight ≤ 1 keeps the sensitivity
            clipped = clipped * staleness_weight(staleness)
            spec_round = target.round_id
        else:
            spec_round = spec.round_id
        noised = clipped + noise_share(spec.dp, spec.params, self._rng)
        codec = self._codec_factory(spec)
        if isinstance(codec, PackedPaillierCodec):
            body = codec.encode(noised, noise=self._take_pool(codec))
        else:
            body = codec.encode(noised)
        encoded, encoded_cpu = time.perf_counter(), time.thread_time()
        # a release's example count would tell the edge, in the clear, how many beats this wearer has — the very
        # thing one beat changes: it stays on the watch (the coordinator never needs it)
        shown = 0 if spec.task == "release" else samples
        for chunk in chunk_payloads(body, chunk_bytes=spec.chunk_bytes, round_id=spec_round,
                                    base_version=base, encrypted=spec.encrypt, samples=shown):
            self.router.publish(topics.fl_update(self.federation, self.settings.site, self.device_id),
                                UpdateMessage(**self.stamp(patient_id=None), payload=chunk), qos=1)
        with self._lock:
            newest = self.global_vector if self.global_vector is not None else global_vector
        self.learner.load_vector(newest)  # the device keeps serving the newest global model
        sent = SentUpdate(spec_round, samples, len(body), trained - started, encoded - trained, float(norm), staleness,
                          train_cpu_s=trained_cpu - started_cpu, encode_cpu_s=encoded_cpu - trained_cpu)
        self.sent.append(sent)
        self.counters.inc("fl.updates_sent")
        return sent
