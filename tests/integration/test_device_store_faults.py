"""A watch whose local store is read-only, full or cannot be opened keeps detecting and alerting over the real
broker: every alert still reaches the bus, and the failure is counted and logged, never silent."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from cardiomesh.runtime import mqtt_transport
from shared import topics
from shared.ecg.signal import MODEL_FS
from shared.ecg.sources import SyntheticEpisode, synthetic
from shared.messages import AlertMessage, decode
from shared.settings import Settings
from shared.transport import InMemoryBus, MqttTransport, Outbox
from tests.integration.faults import record_fault
from tests.waiting import wait_until
from watch_agent.app import WatchAgent, WatchConfig
from watch_agent.replay import Replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EPISODES = [SyntheticEpisode("pause", 20.0, 4.0), SyntheticEpisode("pause", 45.0, 4.0)]


def _signal() -> Replay:
    return Replay(synthetic(60.0, MODEL_FS, episodes=EPISODES, seed=5), loop=False)


def _alerts_with_a_healthy_store(settings: Settings) -> int:
    """What the same watch on the same strip raises when nothing is broken (the in-memory bus)."""
    bus = InMemoryBus()
    config = WatchConfig(device_id="watch-ref", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic")
    watch = WatchAgent(settings, bus.transport("watch-ref"), config, _signal())
    watch.start(run=False)
    while (chunk := watch.replay.next_chunk()) is not None:
        watch.process(chunk)
    watch.stop()
    return sum(1 for t, *_ in bus.published if t.endswith("/alert"))


def _read_only(box: Outbox) -> None:
    box._db.execute("PRAGMA query_only = ON")  # what SQLite raises on a read-only file: "readonly database"


def _full(box: Outbox) -> None:
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count = {pages}")  # "database or disk is full" on the next insert


def _unopenable(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / "outbox").write_text("a file where the store's folder should be")


@pytest.mark.parametrize(("fault", "break_store"), [
    ("read-only", _read_only),
    ("full (no space left)", _full),
    ("cannot be opened", None),
])
def test_a_watch_with_a_broken_store_still_alerts(
        fault: str, break_store: Callable[[Outbox], None] | None, settings: Settings,
        mosquitto: tuple[str, int], unique: str) -> None:
    host, port = mosquitto
    cfg = settings.model_copy(update={"mqtt_url": f"mqtt://{host}:{port}"})
    if break_store is None:
        _unopenable(cfg)
    got: list[AlertMessage] = []
    lock = threading.Lock()

    def keep(_topic: str, raw: bytes) -> None:
        message = decode(raw, max_bytes=1 << 22)
        if isinstance(message, AlertMessage):
            with lock:
                got.append(message)

    listener = MqttTransport(client_id=f"obs-{unique}", host=host, port=port, clean_session=True)
    listener.subscribe(topics.alert(cfg.site, topics.ANY, topics.ANY), keep, qos=1)
    listener.start(wait_s=5)
    assert listener.wait_subscribed(5)
    transport = mqtt_transport(cfg, f"watch-{unique}", outbox=True, clean_session=True)
    box = transport._outbox
    assert (box is None) == (break_store is None)
    if break_store is not None:
        assert box is not None
        break_store(box)
        with pytest.raises(sqlite3.Error):
            box.add("t", b"x" * 65536, 1, False)
    config = WatchConfig(device_id=f"watch-{unique}", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic")
    expected = _alerts_with_a_healthy_store(cfg)
    assert expected >= 1
    watch = WatchAgent(cfg, transport, config, _signal())
    watch.start(run=False)
    transport.start(wait_s=5)
    assert transport.wait_connected(5)
    try:
        while (chunk := watch.replay.next_chunk()) is not None:
            watch.process(chunk)  # detection goes on, chunk after chunk
        assert wait_until(lambda: len(got) >= expected, 10), f"{len(got)} of {expected} alerts on the bus"
        assert len(got) == expected
        failed = watch.counters.get("outbox.write_failed")
        unavailable = watch.counters.get("store.unavailable.outbox")
        if break_store is None:
            assert unavailable == 1 and failed == 0
        else:
            assert failed >= expected and unavailable == 0  # every alert (and vitals) sent without its durable copy
        record_fault(f"a watch's store {fault}", "detection and alerting go on; the failure is counted",
                     f"{len(got)} of {expected} alerts on the bus, "
                     + (f"store.unavailable {unavailable}" if break_store is None else f"outbox.write_failed {failed}"))
    finally:
        watch.stop()
        transport.stop()
        listener.stop()


def test_an_outbox_left_unwritable_fails_loudly_only_once_per_message(tmp_path: Path) -> None:
    """The transport with a full store, no broker: publish does not raise and each loss of durability counts."""
    box = Outbox(tmp_path / "o.db")
    _full(box)
    transport = MqttTransport(client_id="w", port=1, outbox=box)
    for _ in range(3):
        transport.publish("t/x", b"y" * 65536, qos=1)
    transport.publish("t/x", b"z", qos=0)  # QoS 0 never touches the store
    assert transport.counters.get("outbox.write_failed") == 3
