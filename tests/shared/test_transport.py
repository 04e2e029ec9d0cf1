"""Transport tests: the in-memory bus, the router's rejections, the outbox, and paho on real Mosquitto."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from shared import topics
from shared.embedded_broker import EmbeddedBroker
from shared.messages import AlertMessage, encode
from shared.metrics import Counters
from shared.transport import InMemoryBus, MqttTransport, Outbox, Router, Will
from shared.transport.mqtt import PahoClient
from tests import factories


def _router(bus: InMemoryBus) -> tuple[Router, list[AlertMessage], Counters]:
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=64 * 1024)
    got: list[AlertMessage] = []
    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, lambda _p, m: got.append(m))
    return router, got, counters


def test_router_delivers_valid_messages() -> None:
    bus = InMemoryBus()
    _, got, counters = _router(bus)
    msg = factories.alert(device="watch-1", patient="pt-1")
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(msg))
    assert got == [msg] and counters.get("accepted.alert") == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"garbage", "not_json"),
        (b"{" + b" " * 70_000 + b"}", "oversized"),
        (b'{"type": "alert", "payload": {}}', "invalid"),
        (b'{"type": "mystery"}', "unknown_type"),
    ],
)
def test_router_rejects_and_counts(payload: bytes, reason: str) -> None:
    bus = InMemoryBus()
    _, got, counters = _router(bus)
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), payload)
    assert got == [] and counters.get(f"rejected.{reason}") == 1


def test_an_empty_payload_clears_a_retained_message_and_is_not_a_rejection() -> None:
    bus = InMemoryBus()
    _, got, counters = _router(bus)
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), b"")
    assert got == [] and counters.get("retained_cleared") == 1
    assert not any(name.startswith("rejected.") for name in counters.snapshot())


def test_router_rejects_wrong_type_and_spoofed_source() -> None:
    bus = InMemoryBus()
    _, got, counters = _router(bus)
    alert = factories.alert(device="watch-1", patient="pt-1")
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-2"), encode(alert))
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(factories.analysis(alert)))
    assert got == []
    assert counters.get("rejected.wrong_topic") == 1 and counters.get("rejected.wrong_type") == 1


def test_router_survives_handler_errors() -> None:
    bus = InMemoryBus()
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=1 << 20)

    def boom(_p: topics.TopicParts, _m: AlertMessage) -> None:
        raise RuntimeError("bug")

    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, boom)
    alert = factories.alert(device="watch-1", patient="pt-1")
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(alert))
    assert counters.get("rejected.handler_error") == 1
    assert counters.get("dead_letters.kept") == 1 and len(router.dead_letters.all()) == 1  # kept, not dropped
    router.close()


def test_router_off_stops_deliveries_even_from_inside_a_handler() -> None:
    """A watch stops reading full models from inside the handler that installed one (`FlClient.on_model`)."""
    bus = InMemoryBus()
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=64 * 1024)
    pattern = topics.alert("s", topics.ANY, topics.ANY)
    got: list[AlertMessage] = []

    def once(_parts: topics.TopicParts, message: AlertMessage) -> None:
        got.append(message)
        router.off(pattern)

    router.on(pattern, AlertMessage, once)
    other: list[AlertMessage] = []
    Router(bus.transport("u"), counters=Counters(), max_bytes=64 * 1024).on(
        pattern, AlertMessage, lambda _p, m: other.append(m))  # another component on the same pattern keeps it
    for _ in range(2):
        bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(factories.alert(device="watch-1",
                                                                                                patient="pt-1")))
    assert len(got) == 1 and len(other) == 2
    router.on(pattern, AlertMessage, once)  # and on again: subscribing works as before
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(factories.alert(device="watch-1",
                                                                                            patient="pt-1")))
    assert len(got) == 2


def test_outbox_keeps_rows_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "ob.db"
    box = Outbox(path)
    row = box.add("t/1", b"x", 1, False)
    box.close()
    box = Outbox(path)
    assert [r.row_id for r in box.pending()] == [row]
    box.remove(row)
    assert len(box) == 0


def _collect(into: list[bytes], done: threading.Event) -> Callable[[str, bytes], None]:
    """A subscription handler that keeps each payload and signals the first."""
    def handle(_topic: str, payload: bytes) -> None:
        into.append(payload)
        done.set()
    return handle


def _roundtrip(host: str, port: int, unique: str, tmp_path: Path) -> None:
    received: list[bytes] = []
    event = threading.Event()
    sub = MqttTransport(client_id=f"sub-{unique}", host=host, port=port, clean_session=True)
    sub.subscribe(f"cm/v1/t{unique}/#", _collect(received, event))
    sub.start(wait_s=5)
    assert sub.wait_subscribed(10), "broker never acknowledged the subscription"
    box = Outbox(tmp_path / "pub.db")
    pub = MqttTransport(client_id=f"pub-{unique}", host=host, port=port, outbox=box)
    pub.start(wait_s=5)
    try:
        pub.publish(f"cm/v1/t{unique}/x", b"hello", qos=1)
        assert event.wait(5), "message did not arrive"
        assert received == [b"hello"]
        deadline = time.monotonic() + 3
        while len(box) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(box) == 0, "acked message left in the outbox"
    finally:
        pub.stop()
        sub.stop()


@pytest.mark.integration
def test_mqtt_roundtrip_on_mosquitto(mosquitto: tuple[str, int], unique: str, tmp_path: Path) -> None:
    _roundtrip(*mosquitto, unique, tmp_path)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mqtt_roundtrip_on_embedded_broker(unique: str, tmp_path: Path) -> None:
    port = _free_port()
    broker = EmbeddedBroker("127.0.0.1", port)
    broker.start()
    try:
        _roundtrip("127.0.0.1", port, unique, tmp_path)
    finally:
        broker.stop()


@pytest.mark.integration
def test_an_orderly_stop_returns_once_the_broker_acknowledged_every_publish(mosquitto: tuple[str, int],
                                                                             unique: str) -> None:
    """Without an outbox too: the stop used to wait only until paho had written the bytes, then closed the
    socket; the PUBACKs coming back met a reset that discarded what the broker had not read yet (an alert
    lost under load in the broker-crash test)."""
    host, port = mosquitto
    received: list[bytes] = []
    event = threading.Event()
    sub = MqttTransport(client_id=f"sub-ack-{unique}", host=host, port=port, clean_session=True)
    sub.subscribe(f"cm/v1/t{unique}/#", _collect(received, event))
    sub.start(wait_s=5)
    assert sub.wait_subscribed(10)
    pub = MqttTransport(client_id=f"pub-ack-{unique}", host=host, port=port, clean_session=True, drain_s=30)
    pub.start(wait_s=5)
    payloads = [bytes([i]) * 40_000 for i in range(100)]
    try:
        for payload in payloads:
            pub.publish(f"cm/v1/t{unique}/x", payload, qos=1)
        pub.stop()
        assert pub.counters.snapshot().get("publish.unacked_at_stop", 0) == 0
        deadline = time.monotonic() + 20
        while len(received) < len(payloads) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sorted(received) == payloads
    finally:
        sub.stop()


class _SlowBroker:
    """A TCP peer speaking just enough MQTT 3.1.1 to accept a connection and acknowledge QoS 1 publishes
    `ack_after_s` late (never, with None): Mosquitto acknowledges too fast for a stop that leaves early to show."""

    def __init__(self, ack_after_s: float | None) -> None:
        import socket

        self.ack_after_s = ack_after_s
        self.acked_at: list[float] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port = int(self._server.getsockname()[1])
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        conn, _ = self._server.accept()
        conn.settimeout(0.02)
        buffer, due = b"", []  # (when, packet id) of acknowledgements owed
        connected = False
        while not self._done.is_set():
            try:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
            except TimeoutError:
                pass
            except OSError:
                break
            while (packet := self._next_packet(buffer)) is not None:
                first, body, buffer = packet
                if not connected:
                    conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))  # CONNACK: accepted
                    connected = True
                elif first >> 4 == 3 and (first >> 1) & 3 == 1 and self.ack_after_s is not None:
                    topic_len = int.from_bytes(body[:2], "big")
                    due.append((time.monotonic() + self.ack_after_s, body[2 + topic_len:4 + topic_len]))
                elif first >> 4 == 12:
                    conn.sendall(bytes([0xD0, 0x00]))  # PINGRESP
            while due and due[0][0] <= time.monotonic():
                _, mid = due.pop(0)
                self.acked_at.append(time.monotonic())  # before sending: the client may be done before we are
                conn.sendall(bytes([0x40, 0x02]) + mid)  # PUBACK
        conn.close()
        self._server.close()

    @staticmethod
    def _next_packet(buffer: bytes) -> tuple[int, bytes, bytes] | None:
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buffer):
                return None
            length |= (buffer[i] & 0x7F) << shift
            shift, i = shift + 7, i + 1
            if not buffer[i - 1] & 0x80:
                break
        if len(buffer) < i + length:
            return None
        return buffer[0], buffer[i:i + length], buffer[i + length:]


def test_an_orderly_stop_waits_for_late_acknowledgements() -> None:
    broker = _SlowBroker(ack_after_s=0.4)
    dev = MqttTransport(client_id="dev-slow", port=broker.port, clean_session=True, drain_s=10)
    dev.start(wait_s=5)
    try:
        for i in range(5):
            dev.publish("cm/v1/s/x", bytes([i]) * 1000, qos=1)
        dev.stop()
        stopped = time.monotonic()
    finally:
        broker.close()
    assert len(broker.acked_at) == 5 and max(broker.acked_at) <= stopped  # every PUBACK was sent before it returned
    assert dev.counters.snapshot().get("publish.unacked_at_stop", 0) == 0


def test_an_old_early_acknowledgement_never_acknowledges_a_publish_that_reuses_its_id(tmp_path: Path) -> None:
    """Message ids wrap at 65,535: an acknowledgement left unclaimed long ago (or a QoS 0 id paho dropped unreported
    on a reconnect) must not let a new QoS 1 publish with the same id lose its outbox row unacknowledged."""
    box = Outbox(tmp_path / "dev.db")
    dev = MqttTransport(client_id="dev-wrap", port=_free_port(), outbox=box)  # never connected: paho queues
    long_ago = time.monotonic() - 3600
    dev._early_acks[1] = long_ago
    dev._unreported_qos0[2] = long_ago
    dev.publish("cm/v1/s/x", b"a", qos=1)  # id 1
    dev.publish("cm/v1/s/x", b"b", qos=1)  # id 2
    assert set(dev._awaiting_ack) == {1, 2} and len(box) == 2 and not dev._early_acks
    dev._on_publish(dev._client, None, 2, None, None)  # its real acknowledgement is not taken for a QoS 0 report
    assert set(dev._awaiting_ack) == {1} and len(box) == 1
    dev.publish("cm/v1/s/t", b"q", qos=0)  # sent while disconnected: paho drops it, so it is not remembered
    assert not dev._unreported_qos0
    dev.stop()


@pytest.mark.integration
def test_the_online_message_leaves_no_acknowledgement_unclaimed(mosquitto: tuple[str, int], unique: str) -> None:
    host, port = mosquitto
    online = Will(f"cm/v1/t{unique}/presence/dev", b"online")
    dev = MqttTransport(client_id=f"dev-on-{unique}", host=host, port=port, clean_session=True, online=online)
    dev.start(wait_s=5)
    try:
        assert dev.wait_acknowledged(5)
        assert not dev._early_acks and not dev._awaiting_ack
    finally:
        dev.stop()
        cleaner = MqttTransport(client_id=f"clean-on-{unique}", host=host, port=port, clean_session=True)
        cleaner.start(wait_s=5)
        cleaner.publish(online.topic, b"", qos=1, retain=True)
        cleaner.stop()


def test_a_stop_counts_and_keeps_what_the_broker_never_acknowledged(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    broker = _SlowBroker(ack_after_s=None)
    box = Outbox(tmp_path / "dev.db")
    dev = MqttTransport(client_id="dev-silent", port=broker.port, outbox=box, drain_s=0.3)
    dev.start(wait_s=5)
    try:
        for i in range(3):
            dev.publish("cm/v1/s/x", bytes([i]), qos=1)
        dev.publish("cm/v1/s/telemetry", b"qos0", qos=0)  # written, never acknowledged: not waited for
        assert not dev.wait_acknowledged(0.2)
        with caplog.at_level("WARNING", logger="shared.transport.mqtt"):
            dev.stop()
    finally:
        broker.close()
    assert dev.counters.snapshot()["publish.unacked_at_stop"] == 3
    assert len(Outbox(tmp_path / "dev.db")) == 3, "unacknowledged rows stay for the next start"
    assert "3 publishes unacknowledged" in caplog.text and "3 kept in the outbox" in caplog.text


@pytest.mark.integration
def test_offline_publishes_survive_a_restart(mosquitto: tuple[str, int], unique: str, tmp_path: Path) -> None:
    """A device that published while the broker was unreachable, then died, sends on its next start."""
    host, port = mosquitto
    path = tmp_path / "dev.db"
    dead = MqttTransport(client_id=f"dev-{unique}", host=host, port=_free_port(), outbox=Outbox(path))
    dead.publish(f"cm/v1/t{unique}/late", b"kept", qos=1)  # never connected: only the outbox has it
    dead.stop()
    received: list[bytes] = []
    event = threading.Event()
    sub = MqttTransport(client_id=f"sub2-{unique}", host=host, port=port)
    sub.subscribe(f"cm/v1/t{unique}/#", _collect(received, event))
    sub.start(wait_s=5)
    revived = MqttTransport(client_id=f"dev-{unique}", host=host, port=port, outbox=Outbox(path))
    revived.start(wait_s=5)
    try:
        # a fresh publish while the leftover is being replayed goes out once, not again as a "leftover"
        revived.publish(f"cm/v1/t{unique}/now", b"fresh", qos=1)
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # time for a duplicate to show up
        assert sorted(received) == [b"fresh", b"kept"]
    finally:
        revived.stop()
        sub.stop()


@pytest.mark.integration
def test_presence_will_and_goodbye(mosquitto: tuple[str, int], unique: str) -> None:
    host, port = mosquitto
    topic = f"cm/v1/t{unique}/presence/dev"
    seen: list[bytes] = []
    event = threading.Event()
    sub = MqttTransport(client_id=f"ps-{unique}", host=host, port=port, clean_session=True)
    sub.subscribe(topic, _collect(seen, event))
    sub.start(wait_s=5)
    dev = MqttTransport(client_id=f"pd-{unique}", host=host, port=port,
                        will=Will(topic, b"offline"), online=Will(topic, b"online"))
    dev.start(wait_s=5)
    deadline = time.monotonic() + 5
    while b"online" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    dev.stop()
    while b"offline" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    sub.stop()
    assert seen[-2:] == [b"online", b"offline"]
    cleaner = MqttTransport(client_id=f"pc-{unique}", host=host, port=port, clean_session=True)
    cleaner.start(wait_s=5)
    cleaner.publish(topic, b"", qos=1, retain=True)  # remove the retained test presence
    cleaner.stop()


@pytest.mark.integration
def test_mqtt_unsubscribe_from_a_handler_and_resubscribe_for_the_retained(mosquitto: tuple[str, int],
                                                                          unique: str) -> None:
    """What delta sync asks of paho: stop reading a retained topic from inside its handler, read it again later
    (the broker sends its retained message on every subscribe), and another handler of the pattern is unaffected."""
    host, port = mosquitto
    topic = f"cm/v1/t{unique}/retained"
    seen: list[bytes] = []
    kept: list[bytes] = []
    first = threading.Event()
    sub = MqttTransport(client_id=f"us-{unique}", host=host, port=port, clean_session=True)

    def once(_topic: str, payload: bytes) -> None:
        seen.append(payload)
        sub.unsubscribe(topic, once)
        first.set()

    pub = MqttTransport(client_id=f"up-{unique}", host=host, port=port, clean_session=True)
    pub.start(wait_s=5)
    try:
        pub.publish(topic, b"v1", qos=1, retain=True)
        sub.subscribe(topic, once)
        sub.start(wait_s=5)
        assert first.wait(5) and seen == [b"v1"]
        time.sleep(0.3)  # the UNSUBSCRIBE reaches the broker
        pub.publish(topic, b"v2", qos=1, retain=True)
        time.sleep(0.5)
        assert seen == [b"v1"], "a message arrived after unsubscribe"
        again = threading.Event()
        sub.subscribe(topic, _collect(kept, again))
        assert again.wait(5) and kept == [b"v2"]  # the retained one, on the new subscription
    finally:
        pub.publish(topic, b"", qos=1, retain=True)
        pub.stop()
        sub.stop()


@pytest.mark.integration
def test_mqtt_a_pattern_dropped_while_offline_leaves_a_persistent_session(mosquitto: tuple[str, int],
                                                                          unique: str) -> None:
    """With clean_session=False the broker keeps a subscription across a disconnect. One dropped while offline is
    unsubscribed on the next connect, so the broker stops sending it, not merely dispatches it to nobody."""
    host, port = mosquitto
    topic, client_id = f"cm/v1/t{unique}/x", f"persist-{unique}"
    first = MqttTransport(client_id=client_id, host=host, port=port, clean_session=False)
    first.subscribe(topic, lambda _t, _p: None)
    first.start(wait_s=5)
    assert first.wait_subscribed(5)
    first.stop()  # the broker keeps the session and its subscription
    again = MqttTransport(client_id=client_id, host=host, port=port, clean_session=False)
    handler: Callable[[str, bytes], None] = lambda _t, _p: None  # noqa: E731
    again.subscribe(topic, handler)
    again.unsubscribe(topic, handler)  # before connecting: nothing to send it on yet
    arrived: list[str] = []
    paho_callback = again._client.on_message
    assert paho_callback is not None

    def counting(client: Any, userdata: Any, message: Any) -> None:  # what the broker sent at all
        arrived.append(message.topic)
        paho_callback(client, userdata, message)

    again._client.on_message = counting
    pub = MqttTransport(client_id=f"pp-{unique}", host=host, port=port, clean_session=True)
    try:
        again.start(wait_s=5)
        time.sleep(0.3)  # the UNSUBSCRIBE reaches the broker
        pub.start(wait_s=5)
        pub.publish(topic, b"x", qos=1)
        time.sleep(0.5)
        assert arrived == []
    finally:
        pub.stop()
        again.stop()
        cleaner = MqttTransport(client_id=client_id, host=host, port=port, clean_session=True)
        cleaner.start(wait_s=5)  # a clean connect ends the persistent session
        cleaner.stop()


def test_each_kind_has_its_own_size_limit() -> None:
    """A 100 KB 'vitals' is refused before parsing though the component accepts 512 KB alerts."""
    from shared.messages import VitalsMessage

    bus = InMemoryBus()
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=512 * 1024, background_retry=False)
    got: list[VitalsMessage] = []
    router.on(topics.vitals("s", topics.ANY, topics.ANY), VitalsMessage, lambda _p, m: got.append(m))
    bus.transport("w").publish(topics.vitals("s", "pt-1", "watch-1"), b"{" + b" " * 100_000 + b"}")
    assert counters.get("rejected.oversized") == 1 and got == []
    alert = factories.alert(device="watch-1", patient="pt-1")
    assert len(encode(alert)) > 8 * 1024  # an alert with its strip: bigger than a command may be
    assert router.accept(topics.alert("s", "pt-1", "watch-1"), encode(alert), AlertMessage) == alert


def test_counters_are_exported_in_prometheus_text(tmp_path: Path) -> None:
    from shared.metrics import MetricsFile, metrics_path, to_prometheus

    counters = Counters()
    counters.inc("rejected.not_json", 3)
    counters.inc("accepted.alert")
    text = to_prometheus('edge "1"', counters.snapshot())
    assert 'cardiomesh_rejected_total{component="edge \\"1\\"",reason="not_json"} 3' in text
    assert 'cardiomesh_events_total{component="edge \\"1\\"",name="accepted.alert"} 1' in text
    path = metrics_path(tmp_path, "edge-1")
    exporter = MetricsFile(counters, "edge-1", path, every_s=0.05).start()
    counters.inc("rejected.oversized")
    time.sleep(0.3)
    exporter.stop()
    assert 'reason="oversized"} 1' in path.read_text()


class _AppendedWhileWalked(collections.deque[Any]):
    """paho's queue of outgoing packets, with another thread's publish landing while `reconnect` walks it (once)."""

    raced = False

    def __iter__(self) -> Iterator[Any]:
        walk = super().__iter__()
        if self.raced:
            yield from walk
            return
        self.raced = True
        first = next(walk)
        self.append(dict(first))  # what a publish() on another thread does meanwhile
        yield first
        yield from walk  # the deque noticed: RuntimeError, as in paho's network thread


def test_paho_reconnect_survives_a_publish_racing_its_walk_of_the_queue(mosquitto: tuple[str, int],
                                                                        unique: str) -> None:
    host, port = mosquitto
    packet = {"command": mqtt.PUBLISH, "qos": 1, "info": None}
    for kind, survives in ((mqtt.Client, False), (PahoClient, True)):
        client = kind(CallbackAPIVersion.VERSION2, client_id=f"race-{unique}", protocol=mqtt.MQTTv311)
        client.connect_async(host, port)
        client._out_packet = _AppendedWhileWalked([packet])
        try:
            if survives:
                assert client.reconnect() == mqtt.MQTT_ERR_SUCCESS
            else:
                with pytest.raises(RuntimeError, match="mutated during iteration"):
                    client.reconnect()
        finally:
            client.disconnect()
