"""Delta model sync on the in-memory bus (ADR 0015): the coordinator publishes every version whole and as a delta
under one signature; a watch holding the previous version installs the next from the delta, bit for bit the full
model, and reads the full model only when it holds none or a signed delta does not fit. Forged, stale and
malformed deltas are refused and counted."""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from cloud_expert.coordinator.coordinator import VersionDelta, signed_payloads
from cloud_expert.coordinator.keys import CoordinatorKeys
from shared import topics
from shared.crypto.signing import ModelMetadata, generate_signing_key, metadata_bytes
from shared.fl.model_delta import apply_delta, encode_delta, vector_bytes, vector_sha256
from shared.identity import Stamper
from shared.messages import ModelDeltaMessage, ModelMessage, decode, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.fl.test_protocol import ToyLearner, _federation, _stop_edges  # noqa: F401 (_stop_edges: autouse)
from watch_agent.trainer import FlClient

FED = "watch-detector"
P = 8_756  # BeatNet's size, so the byte counts mean something
_WATCHES: list[FlClient] = []


@pytest.fixture(autouse=True)
def _stop_watches() -> Iterator[None]:
    yield
    while _WATCHES:
        _WATCHES.pop().stop(timeout_s=5)


class Publisher:
    """The coordinator's publishing alone (`signed_payloads`, then full and delta retained, in that order), so a
    test can step the model, skip a version or forge, without running rounds."""

    def __init__(self, bus: InMemoryBus, *, seed: int = 0) -> None:
        self.signing = generate_signing_key()
        self.transport = bus.transport("fl-coordinator")
        self.stamp = Stamper("fl-coordinator")
        self.rng = np.random.default_rng(seed)
        self.vector = self.rng.normal(0, 0.2, P).astype(np.float32)
        self.version = 0
        self.delta: VersionDelta | None = None
        self.deltas: dict[int, ModelDeltaMessage] = {}

    def advance(self, *, publish: bool = True) -> None:
        target = (self.vector + self.rng.normal(0, 0.01, P)).astype(np.float32)
        delta = encode_delta(self.vector, target)
        self.vector = apply_delta(self.vector, delta)
        self.delta = VersionDelta(version=self.version + 1, base_version=self.version, delta=delta)
        self.version += 1
        if publish:
            self.publish()

    def publish(self) -> None:
        full, delta = signed_payloads(self.signing, self.vector, version=self.version, round_id=self.version - 1,
                                      delta=self.delta)
        self.send_full(ModelMessage(**self.stamp(patient_id=None), payload=full))
        if delta is not None:
            self.deltas[self.version] = ModelDeltaMessage(**self.stamp(patient_id=None), payload=delta)
            self.send_delta(self.deltas[self.version])

    def send_full(self, message: ModelMessage) -> None:
        self.transport.publish(topics.fl_model(FED), encode(message), retain=True)

    def send_delta(self, message: ModelDeltaMessage) -> None:
        self.transport.publish(topics.fl_model_delta(FED), encode(message), retain=True)

    def forged(self, **changes: object) -> ModelDeltaMessage:
        """The current version's delta message with payload fields changed."""
        real = self.deltas[self.version]
        return real.model_copy(update={"payload": real.payload.model_copy(update=changes)})


def _watch(bus: InMemoryBus, publisher: Publisher, name: str = "watch-1") -> FlClient:
    client = FlClient(Settings(site="s1"), bus.transport(name), device_id=name, learner=ToyLearner(np.zeros(P)),
                      verify_key=publisher.signing.public_key())
    client.start()
    _WATCHES.append(client)
    return client


def _holds(client: FlClient, publisher: Publisher) -> bool:
    assert client.global_vector is not None
    return (client.version == publisher.version and vector_bytes(client.global_vector) == vector_bytes(publisher.vector)
            and client.model_sha256 == vector_sha256(publisher.vector))


def test_a_watch_holding_the_previous_version_installs_the_next_from_its_delta() -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    watch = _watch(bus, publisher)
    assert _holds(watch, publisher) and watch.counters.get("fl.model_installed_full") == 1
    full_bytes = watch.counters.get("fl.model_bytes_received.full")
    for _ in range(3):
        publisher.advance()
        assert _holds(watch, publisher)  # the delta rebuilt the signed model bit for bit
    retained = decode(bus.retained[topics.fl_model(FED)], max_bytes=1 << 22)
    assert isinstance(retained, ModelMessage)
    assert base64.b64decode(retained.payload.model_b64) == vector_bytes(watch.learner.vector())
    c = watch.counters
    assert c.get("fl.model_installed_delta") == 3 and c.get("fl.model_installed_full") == 1
    assert c.get("fl.model_bytes_received.full") == full_bytes  # never read a full model again
    assert c.get("fl.model_bytes_received.delta") < 0.4 * 3 * full_bytes
    assert c.total("fl.model_delta_refused.") == 0 and c.get("fl.model_full_reads") == 1


def test_forged_and_stale_deltas_are_refused_counted_and_change_nothing() -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    watch = _watch(bus, publisher)
    publisher.advance()
    publisher.advance()
    held = vector_bytes(watch.learner.vector())
    forged_signature = generate_signing_key().sign(metadata_bytes(ModelMetadata(version=3, round=2, sha256="0" * 64)))
    cases = {
        "UnsignedModelError": publisher.forged(version=3, signature_b64=""),
        "BadSignatureError": publisher.forged(version=3, round_id=2, sha256="0" * 64,
                                              signature_b64=base64.b64encode(forged_signature).decode()),
        "StaleModelError": publisher.deltas[1],  # a genuine, older delta replayed
    }
    for reason, message in cases.items():
        publisher.send_delta(message)
        assert watch.counters.get(f"fl.model_delta_refused.{reason}") == 1, reason
    assert _holds(watch, publisher) and vector_bytes(watch.learner.vector()) == held
    assert watch.counters.get("fl.model_full_reads") == 1  # unsigned claims never make a watch download anything
    publisher.send_delta(publisher.deltas[2])  # the retained one again: not a refusal
    assert watch.counters.get("fl.model_delta_duplicate") == 1 and watch.counters.total("fl.model_delta_refused.") == 3


def test_a_watch_that_missed_a_version_reads_the_full_model_once_then_deltas_again() -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    watch = _watch(bus, publisher)
    publisher.advance(publish=False)  # version 1 never reached this watch
    publisher.advance()  # version 2's delta is from 1: the watch holds 0
    assert _holds(watch, publisher)
    c = watch.counters
    assert c.get("fl.model_delta_refused.base_mismatch") == 1
    assert c.get("fl.model_installed_full") == 2 and c.get("fl.model_full_reads") == 2
    full_bytes = c.get("fl.model_bytes_received.full")
    publisher.advance()
    assert _holds(watch, publisher) and c.get("fl.model_installed_delta") == 1
    assert c.get("fl.model_bytes_received.full") == full_bytes  # stopped reading full models once caught up


@pytest.mark.parametrize(("body", "reason"), [
    ("rebuilds another model", "TamperedModelError"),
    ("unreadable", "malformed"),
])
def test_a_signed_newer_delta_that_does_not_rebuild_its_model_sends_the_watch_to_the_full_one(
        body: str, reason: str) -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    watch = _watch(bus, publisher)
    base = publisher.vector.copy()
    publisher.advance(publish=False)
    full, delta = signed_payloads(publisher.signing, publisher.vector, version=1, round_id=0, delta=publisher.delta)
    assert delta is not None
    publisher.send_full(ModelMessage(**publisher.stamp(patient_id=None), payload=full))
    assert watch.version == 0  # caught up: it does not read full models
    wrong = encode_delta(base, base + np.float32(0.5)) if body == "rebuilds another model" else b"CMD1" + b"\0" * 60
    bad = delta.model_copy(update={"delta_b64": base64.b64encode(wrong).decode()})
    publisher.send_delta(ModelDeltaMessage(**publisher.stamp(patient_id=None), payload=bad))
    assert watch.counters.get(f"fl.model_delta_refused.{reason}") == 1
    assert _holds(watch, publisher) and watch.counters.get("fl.model_installed_full") == 2  # version 1, whole


def test_a_delta_before_any_model_waits_for_the_full_one() -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    watch = _watch(bus, publisher)  # nothing retained yet: reading the full topic, holding nothing
    publisher.advance(publish=False)
    full, delta = signed_payloads(publisher.signing, publisher.vector, version=1, round_id=0, delta=publisher.delta)
    assert delta is not None
    publisher.send_delta(ModelDeltaMessage(**publisher.stamp(patient_id=None), payload=delta))
    assert watch.counters.get("fl.model_delta_refused.no_base") == 1 and watch.version is None
    publisher.send_full(ModelMessage(**publisher.stamp(patient_id=None), payload=full))
    assert _holds(watch, publisher)


def test_a_newcomer_reads_the_full_model_once_then_only_deltas() -> None:
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    for _ in range(3):
        publisher.advance()
    newcomer = _watch(bus, publisher)
    assert _holds(newcomer, publisher)
    c = newcomer.counters
    assert c.get("fl.model_installed_full") == 1 and c.get("fl.model_delta_duplicate") == 1  # the retained delta
    publisher.advance()
    assert _holds(newcomer, publisher) and c.get("fl.model_installed_delta") == 1
    assert c.total("fl.model_delta_refused.") == 0 and c.get("fl.model_full_reads") == 1


@pytest.mark.parametrize("bits", [8, 0])
def test_rounds_publish_each_version_whole_and_as_a_delta_of_the_same_bytes(coordinator_keys: CoordinatorKeys,
                                                                            bits: int) -> None:
    bus, coordinator, _edges, clients, _optimum = _federation(coordinator_keys, encrypt=False)
    coordinator.config = dataclasses.replace(coordinator.config, model_delta_bits=bits)
    for r in range(3):
        assert coordinator.run_round(r).status == "ok"
    fulls = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t == topics.fl_model(FED)]
    deltas = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t == topics.fl_model_delta(FED)]
    assert [m.payload.version for m in fulls] == [0, 1, 2, 3]  # type: ignore[attr-defined]
    assert [m.payload.version for m in deltas] == [1, 2, 3]  # type: ignore[attr-defined]
    for previous, full, delta in zip(fulls[:-1], fulls[1:], deltas, strict=True):
        assert isinstance(previous, ModelMessage) and isinstance(full, ModelMessage)
        assert isinstance(delta, ModelDeltaMessage)
        base = np.frombuffer(base64.b64decode(previous.payload.model_b64), dtype="<f4")
        rebuilt = apply_delta(base, base64.b64decode(delta.payload.delta_b64))
        assert vector_bytes(rebuilt) == base64.b64decode(full.payload.model_b64)
        assert (delta.payload.sha256, delta.payload.signature_b64) == (full.payload.sha256, full.payload.signature_b64)
        assert (delta.payload.base_version, delta.payload.base_sha256) == (previous.payload.version,
                                                                           previous.payload.sha256)
    for client in clients:
        assert client.global_vector is not None
        assert vector_bytes(client.global_vector) == vector_bytes(coordinator.vector)
        c = client.counters
        assert (c.get("fl.model_installed_full"), c.get("fl.model_installed_delta")) == (1, 3)
        assert c.total("fl.model_delta_refused.") == 0
    coordinator.retire()
    assert bus.retained[topics.fl_model_delta(FED)] == b"" and bus.retained[topics.fl_model(FED)] == b""


class _SlowLearner(ToyLearner):
    """Loading a model takes until the test lets it finish (a busy device): the moment a reader sees the new
    version, the weights may still be loading."""

    def __init__(self) -> None:
        super().__init__(np.zeros(P))
        self.release = threading.Event()
        self.block = False

    def load_vector(self, vector: np.ndarray) -> None:
        if self.block:
            self.release.wait(10)
        super().load_vector(vector)


def test_whoever_sees_a_new_version_also_sees_its_install_counted() -> None:
    """`run_federation` waits for the watches' versions, then reads their download counters: an install
    counted only after the (slow) load read as a lost delta (CI once saw 5 of 6)."""
    bus = InMemoryBus()
    publisher = Publisher(bus)
    publisher.publish()
    learner = _SlowLearner()
    watch = FlClient(Settings(site="s1"), bus.transport("watch-1"), device_id="watch-1", learner=learner,
                     verify_key=publisher.signing.public_key())
    watch.start()
    _WATCHES.append(watch)
    learner.block = True
    sender = threading.Thread(target=publisher.advance)
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while watch.version != 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert watch.version == 1 and sender.is_alive()  # seen while the weights are still loading
        assert watch.counters.get("fl.model_installed_delta") == 1
    finally:
        learner.release.set()
        sender.join(10)
    assert _holds(watch, publisher)
