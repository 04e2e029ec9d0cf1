"""A watch that lost its broker keeps detecting: its outbox drains in order when the broker is back, and
the hub answers every alert, marking the ones detected long ago as late."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore
from shared import topics
from shared.messages import AlertMessage, TriageMessage, decode, encode, utcnow
from shared.settings import Settings
from shared.transport import MqttTransport, Outbox
from tests import factories
from tests.conftest import mosquitto_binary
from tests.integration.faults import record_fault
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SITE = "home-o"
ALERTS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _broker(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert wait_until(lambda: _answers(port), 10)
    return process


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def port() -> Iterator[int]:
    yield _free_port()


def test_an_offline_watch_drains_in_order_and_late_alerts_say_so(tmp_path: Path, port: int) -> None:
    box = Outbox(tmp_path / "watch-outbox.db")
    watch = MqttTransport(client_id="watch-1", port=port, outbox=box)
    watch.start()  # no broker yet: the watch is offline
    ten_minutes_ago = utcnow() - timedelta(minutes=10)
    alerts = [factories.alert(device="watch-1", patient="pt-1").model_copy(
        update={"seq": i + 1, "created_at": ten_minutes_ago + timedelta(seconds=i)}) for i in range(ALERTS)]
    for alert in alerts:  # detected while offline: into the outbox
        watch.publish(topics.alert(SITE, "pt-1", "watch-1"), encode(alert))
    broker = _broker(tmp_path, port)
    seen: list[AlertMessage] = []
    triages: list[TriageMessage] = []
    lock = threading.Lock()

    def keep(_topic: str, raw: bytes) -> None:
        message = decode(raw, max_bytes=1 << 22)
        with lock:
            if isinstance(message, AlertMessage):
                seen.append(message)
            elif isinstance(message, TriageMessage):
                triages.append(message)

    settings = Settings(site=SITE, state_dir=tmp_path / "edge", analysis_timeout_s=60, edge_analysis=False,
                        mqtt_url=f"mqtt://127.0.0.1:{port}")
    edge_transport = MqttTransport(client_id=f"{SITE}-edge-1", port=port)
    hub = EdgeHub(settings, edge_transport, store=EdgeStore(tmp_path / "edge.db"))
    observer = MqttTransport(client_id="observer", port=port, clean_session=True)
    observer.subscribe(topics.everything(SITE), keep)
    try:
        hub.start()
        edge_transport.start(wait_s=5)
        observer.start(wait_s=5)
        assert edge_transport.wait_subscribed(5) and observer.wait_subscribed(5)
        # the watch reconnects on its own (paho's backoff) and drains what it held
        drained = wait_until(lambda: hub.store.counts()["episodes"] == ALERTS, 30)

        def all_triaged() -> bool:
            with lock:
                return len(triages) >= ALERTS

        wait_until(all_triaged, 10)
        with lock:
            order = [m.seq for m in seen]
            late = [t for t in triages if any(r.startswith("late:") for r in t.payload.reasons)]
        record_fault("watch offline (broker unreachable) while it detects 12 alerts, 10 min old when they arrive",
                     "all reach the hub in order, answered, marked late",
                     f"{hub.store.counts()['episodes']} of {ALERTS} at the hub, order kept: "
                     f"{order == sorted(order)}, triages marked late: {len(late)}, "
                     f"late alerts counted: {hub.counters.get('alerts.late')}")
        assert drained, hub.store.counts()
        assert order == sorted(order) and len(order) >= ALERTS
        assert hub.counters.get("alerts.late") == ALERTS and len(late) >= ALERTS
        assert wait_until(lambda: len(box) == 0, 5)  # every row acknowledged, none left behind
    finally:
        hub.stop()
        edge_transport.stop()
        observer.stop()
        watch.stop()
        broker.terminate()
        broker.wait(timeout=10)
