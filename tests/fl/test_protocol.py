"""The federated round protocol on the in-memory bus, with a toy learner (pure numpy), both plain and
encrypted: convergence, dedupe, tampering, dropouts, the ≥ k rule, signed models, no private key at the edge."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest

from cloud_expert.coordinator.coordinator import Coordinator, RoundConfig
from cloud_expert.coordinator.keys import CoordinatorKeys
from edge_hub.aggregation import EdgeAggregator
from shared import topics
from shared.crypto.paillier import PaillierPrivateKey
from shared.fl_codec import codec_for_round
from shared.messages import ModelMessage, RoundPayload, UpdateMessage, decode, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.waiting import wait_until
from watch_agent.trainer import FlClient

P = 50
SITE = "s1"
_EDGES: list[EdgeAggregator] = []
_CLIENTS: list[FlClient] = []


@pytest.fixture(autouse=True)
def _stop_edges() -> Iterator[None]:
    """Edge deadline loops are threads: stop them with the test, not after pytest closed its streams."""
    yield
    while _EDGES:  # first: a running edge can open a new buffer, and watches start training for it
        _EDGES.pop().stop()
    while _CLIENTS:  # then clients still training for a round the test no longer waits on
        _CLIENTS.pop().stop(timeout_s=15)


class ToyLearner:
    """Local training pulls the parameters halfway toward this client's own optimum."""

    def __init__(self, target: np.ndarray, pull: float = 0.5) -> None:
        self.target = target
        self.pull = pull
        self.v = np.zeros_like(target)

    def load_vector(self, vector: np.ndarray) -> None:
        self.v = np.asarray(vector, dtype=np.float32).copy()

    def vector(self) -> np.ndarray:
        return self.v

    def train(self, spec: RoundPayload, global_vector: np.ndarray) -> int:
        self.v = self.v + self.pull * (self.target - self.v)
        return 100


def _federation(keys: CoordinatorKeys, *, clients: int = 4, encrypt: bool = True, min_clients: int = 2,
                timeout_s: float = 20.0, sites: int = 1, average_last: int = 0):
    bus = InMemoryBus()
    rng = np.random.default_rng(0)
    targets = [rng.uniform(-0.2, 0.2, P).astype(np.float32) for _ in range(clients)]
    site_of = [f"s{i % sites + 1}" for i in range(clients)]
    participants = [f"{site_of[i]}/watch-{i}" for i in range(clients)]
    config = RoundConfig(encrypt=encrypt, min_clients=min_clients, round_timeout_s=timeout_s, grace_s=0.5,
                         clip_norm=10.0, max_clients=16, chunk_bytes=2048, average_last=average_last)
    coordinator = Coordinator(Settings(site="cloud"), bus.transport("coordinator"), keys=keys,
                              initial=np.zeros(P, dtype=np.float32), config=config, participants=participants)
    coordinator.start()
    edges = []
    for s in sorted(set(site_of)):
        edge = EdgeAggregator(Settings(site=s), bus.transport(f"edge-{s}"), edge_id="edge-1",
                              codec_factory=codec_for_round)
        edge.start()
        edges.append(edge)
        _EDGES.append(edge)
    fl_clients = []
    for i in range(clients):
        client = FlClient(Settings(site=site_of[i]), bus.transport(f"watch-{i}"), device_id=f"watch-{i}",
                          learner=ToyLearner(targets[i]), verify_key=keys.verify_key, seed=i)
        client.start()
        fl_clients.append(client)
        _CLIENTS.append(client)
    coordinator.publish_model()
    return bus, coordinator, edges, fl_clients, np.mean(targets, axis=0)


def test_the_shipped_model_is_the_tail_average_of_the_last_global_models(coordinator_keys: CoordinatorKeys) -> None:
    _bus, coordinator, _edges, clients, _optimum = _federation(coordinator_keys, encrypt=False, average_last=3)
    assert np.array_equal(coordinator.release_vector(), coordinator.vector)  # nothing released yet: the initial one
    history = []
    for r in range(5):
        assert coordinator.run_round(r).status == "ok"
        history.append(coordinator.vector.copy())
    np.testing.assert_allclose(coordinator.release_vector(), np.mean(history[-3:], axis=0), rtol=1e-6)
    assert not np.allclose(coordinator.release_vector(), coordinator.vector)  # still moving: the mean lags
    assert all(c.version == 5 for c in clients)  # watches train on the newest model, not on the average


def test_a_stopped_client_finishes_its_training_and_takes_no_new_round(coordinator_keys: CoordinatorKeys) -> None:
    _bus, coordinator, _edges, clients, _optimum = _federation(coordinator_keys, encrypt=False)
    assert coordinator.run_round(0).status == "ok"
    assert all(c.stop(timeout_s=10) for c in clients)  # nothing left running in a watch thread
    sent = [len(c.sent) for c in clients]
    coordinator.config = dataclasses.replace(coordinator.config, round_timeout_s=0.5, grace_s=0.2)
    assert coordinator.run_round(1).status == "too_few"  # stopped watches do not train again
    assert [len(c.sent) for c in clients] == sent


@pytest.mark.parametrize("encrypt", [False, True])
def test_rounds_converge_to_the_federated_optimum(coordinator_keys: CoordinatorKeys, encrypt: bool) -> None:
    _bus, coordinator, edges, clients, optimum = _federation(coordinator_keys, encrypt=encrypt, sites=2)
    for r in range(6):
        record = coordinator.run_round(r)
        assert record.status == "ok" and record.clients == 4
    assert coordinator.version == 6
    assert np.abs(coordinator.vector - optimum).max() < 0.01  # 1 − 0.5⁶ of the way, plus quantization
    assert all(c.version == 6 for c in clients)  # every client installed every signed model
    for edge in edges:
        edge.stop()


def test_duplicate_and_tampered_updates(coordinator_keys: CoordinatorKeys) -> None:
    bus, coordinator, (edge,), _clients, _ = _federation(coordinator_keys, clients=3)
    record = coordinator.run_round(0)
    assert record.clients == 3
    sent = [(t, p) for t, p, *_ in bus.published if "/update/" in t]
    # a redelivery of a whole update in the next round is counted once; a tampered one is refused
    record = coordinator.run_round(1)
    updates = [(t, p) for t, p, *_ in bus.published if "/update/" in t][len(sent):]
    topic, raw = updates[0]
    edge_round = RoundPayload.model_validate(json.loads(
        [p for t, p, *_ in bus.published if t == topics.fl_round("watch-detector")][-1])["payload"])
    assert edge_round.round_id == 1
    duplicates_before = edge.counters.get("fl.duplicate_update")
    for t, p in updates:
        bus.transport("replayer").publish(t, p)
    assert edge.counters.get("fl.duplicate_update") >= duplicates_before  # closed round: stale, not double
    msg = decode(raw, max_bytes=1 << 22)
    assert isinstance(msg, UpdateMessage)
    forged = msg.model_copy(update={"payload": msg.payload.model_copy(update={
        "chunk_b64": base64.b64encode(b"\x00" * 10).decode(), "chunk_count": 1, "chunk_index": 0,
        "body_bytes": 10})})
    bus.transport("forger").publish(topic, encode(forged))
    assert edge.counters.get("fl.rejected_chunk") + edge.counters.get("fl.rejected_stale") >= 1
    assert record.clients == 3


def test_a_duplicate_update_inside_an_open_round_counts_once(coordinator_keys: CoordinatorKeys) -> None:
    bus, coordinator, (edge,), clients, _ = _federation(coordinator_keys, clients=3, timeout_s=3.0)
    clients[2].paused = True  # keeps the round open until its deadline
    original_publish = bus._publish

    def twice(topic: str, payload: bytes, qos: int, retain: bool) -> None:
        original_publish(topic, payload, qos, retain)
        if "/update/" in topic:
            original_publish(topic, payload, qos, retain)  # the broker delivered it again

    bus._publish = twice
    record = coordinator.run_round(0)
    assert record.clients == 2
    assert edge.counters.get("fl.duplicate_update") == 2
    assert edge.counters.get("fl.accepted_update") == 2


def test_a_dropout_does_not_stall_the_round(coordinator_keys: CoordinatorKeys) -> None:
    _bus, coordinator, _edges, clients, _ = _federation(coordinator_keys, clients=4, timeout_s=1.5)
    clients[3].paused = True
    record = coordinator.run_round(0)
    assert record.status == "ok" and record.clients == 3 and record.seconds < 10
    assert "s1/watch-3" not in record.contributors


def test_fewer_than_k_clients_means_nothing_is_decrypted(coordinator_keys: CoordinatorKeys,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _bus, coordinator, _edges, clients, _ = _federation(coordinator_keys, clients=3, min_clients=3, timeout_s=1.0)
    clients[0].paused = True
    decrypted: list[int] = []
    import shared.crypto.packing as packing

    real = packing.decrypt_levels
    def spy(*args, **kwargs):
        decrypted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(packing, "decrypt_levels", spy)
    before = coordinator.vector.copy()
    record = coordinator.run_round(0)
    assert record.status == "too_few" and record.clients == 2
    assert decrypted == [] and coordinator.version == 0 and np.array_equal(coordinator.vector, before)


def test_unsigned_wrongly_signed_and_stale_models_are_refused(coordinator_keys: CoordinatorKeys) -> None:
    from shared.crypto.signing import generate_signing_key, sign_model

    bus, _coordinator, _edges, clients, _ = _federation(coordinator_keys, clients=2)
    client = clients[0]
    assert client.version == 0
    good = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t == topics.fl_model("watch-detector")][-1]
    assert isinstance(good, ModelMessage)
    blob = np.ones(P, dtype="<f4").tobytes()
    forged = sign_model(generate_signing_key(), blob, version=5, round=0)
    cases = {
        "UnsignedModelError": good.payload.model_copy(update={"version": 9, "signature_b64": ""}),
        "BadSignatureError": good.payload.model_copy(update={
            "version": 5, "sha256": forged.metadata.sha256, "model_b64": base64.b64encode(blob).decode(),
            "signature_b64": base64.b64encode(forged.signature or b"").decode()}),
        "StaleModelError": good.payload,
    }
    client.fetch_full()  # a watch reads full models only while it wants a newer one than it holds
    assert client.counters.get("fl.model_refused.StaleModelError") == 1  # the retained one: the version it holds
    for name, payload in cases.items():
        before = client.counters.get(f"fl.model_refused.{name}")
        forged_message = good.model_copy(update={"payload": payload})
        bus.transport("attacker").publish(topics.fl_model("watch-detector"), encode(forged_message))
        assert client.counters.get(f"fl.model_refused.{name}") == before + 1, name
    assert client.version == 0 and not np.any(client.learner.vector())


def test_the_edge_never_holds_the_private_key(coordinator_keys: CoordinatorKeys) -> None:
    bus, coordinator, (edge,), _clients, _ = _federation(coordinator_keys, clients=2)
    coordinator.run_round(0)

    def reachable(obj: object, depth: int = 0, seen: set[int] | None = None) -> bool:
        seen = seen if seen is not None else set()
        if id(obj) in seen or depth > 6:
            return False
        seen.add(id(obj))
        if isinstance(obj, PaillierPrivateKey):
            return True
        if isinstance(obj, dict):
            return any(reachable(v, depth + 1, seen) for v in obj.values())
        if isinstance(obj, (list, tuple, set)):
            return any(reachable(v, depth + 1, seen) for v in obj)
        if dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
            names = list(getattr(obj, "__dict__", {}).keys()) + list(getattr(obj, "__slots__", ()))
            return any(reachable(getattr(obj, n, None), depth + 1, seen) for n in names)
        return False

    assert not reachable(edge)
    assert reachable(coordinator)  # the check itself can find one
    announced = [p for t, p, *_ in bus.published if t == topics.fl_round("watch-detector")][-1]
    private = coordinator_keys.paillier.private_key
    assert str(private.p) not in announced.decode() and str(private.q) not in announced.decode()


def test_async_fedbuff_with_slow_devices_keeps_improving(coordinator_keys: CoordinatorKeys) -> None:
    """Buffers of 2 updates, one device much slower: versions advance without waiting for it, its stale
    updates still count (weighted), and the model approaches the optimum."""
    _bus, coordinator, (edge,), clients, optimum = _federation(coordinator_keys, clients=4, min_clients=2,
                                                              timeout_s=5.0, encrypt=True)
    coordinator.config = dataclasses.replace(coordinator.config, mode="async", buffer_size=2, max_staleness=12)
    clients[3].slowdown_s = 0.1
    for client in clients:
        client.learner.pull = 0.2  # small local steps: the buffered average tracks the federation's optimum
    start = float(np.linalg.norm(coordinator.vector - optimum))
    records = [coordinator.run_async_step(s) for s in range(12)]
    assert sum(r.status == "ok" for r in records) >= 10
    assert coordinator.version >= 10  # nobody waited for the slow device
    assert any("s1/watch-3" in r.contributors for r in records)  # ...whose stale updates still count
    assert any(u.staleness > 0 for u in clients[3].sent)
    assert float(np.linalg.norm(coordinator.vector - optimum)) < 0.8 * start
    assert edge.counters.get("fl.accepted_update") >= 20


def test_an_update_records_its_cpu_seconds_apart_from_the_wait(coordinator_keys: CoordinatorKeys) -> None:
    """Simulated watches in one process take turns at the training lock: the wall seconds of a training count that
    wait, the CPU seconds only the watch's own work (what bench/fl_scale.py sums into its floor)."""

    class WaitingLearner(ToyLearner):
        def train(self, spec: RoundPayload, global_vector: np.ndarray) -> int:
            time.sleep(0.3)  # another watch holds the training lock
            return super().train(spec, global_vector)

    _bus, coordinator, _edges, clients, _optimum = _federation(coordinator_keys, clients=2)
    for client in clients:
        client.learner = WaitingLearner(np.zeros(P, dtype=np.float32))
    assert coordinator.run_round(0).status == "ok"
    # the in-memory bus delivers inline: the round can close before the watch thread notes what it sent
    assert wait_until(lambda: all(c.sent for c in clients), 10)
    for client in clients:
        (sent,) = client.sent
        assert 0 <= sent.train_cpu_s <= sent.train_s - 0.29  # the 0.3 s wait is wall time, never CPU time
        assert 0 < sent.encode_cpu_s <= sent.encode_s + 0.01  # encrypting is work: CPU, and never more than wall
