"""The broker killed -9 while alerts wait for an offline edge: the provisioned persistence keeps them.

Mosquitto acknowledges a QoS 1 publish before it saves it, so the watch's outbox has already let go;
with the old `autosave_interval 30` a broker killed within 30 s lost every alert queued for an edge
that was away. The provisioned configuration saves on every change.
"""

from __future__ import annotations

import getpass
import os
import signal
import time
from pathlib import Path

import pytest

from cardiomesh.provision import provision
from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore
from shared import topics
from shared.ecg.signal import MODEL_FS
from shared.ecg.sources import SyntheticEpisode, synthetic
from shared.messages import encode
from shared.settings import Settings
from shared.transport import MqttTransport
from tests import factories
from tests.cardiomesh.test_provision import Broker, _free_port
from tests.conftest import mosquitto_binary
from tests.integration.faults import record_fault
from tests.waiting import wait_until
from watch_agent.app import WatchAgent, WatchConfig
from watch_agent.awaiting import AwaitingAnswers
from watch_agent.replay import Replay

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SITE = "home-k"
ALERTS = 8


def test_alerts_queued_for_an_offline_edge_survive_a_broker_killed_9(tmp_path: Path) -> None:
    mosquitto_binary()
    tls_port, password_port = _free_port(), _free_port()
    provision(tmp_path / "pki", SITE, 1, tls_port=tls_port, password_port=password_port,
              persistence_dir=str(tmp_path / "data"), run_as=getpass.getuser() if os.geteuid() == 0 else None)
    (tmp_path / "data").mkdir()
    broker = Broker(tmp_path / "pki", tls_port, password_port)
    broker.start()
    settings = Settings(site=SITE, state_dir=tmp_path / "edge", analysis_timeout_s=60, edge_analysis=False)
    edge_id = f"{SITE}-edge-1"

    def edge_transport() -> MqttTransport:
        return MqttTransport(client_id=edge_id, port=password_port, security=broker.password(edge_id))

    try:
        first = edge_transport()  # the edge's persistent session and subscriptions, then it goes away
        hub = EdgeHub(settings, first, store=EdgeStore(tmp_path / "edge.db"))
        hub.start()
        first.start(wait_s=5)
        assert first.wait_subscribed(5)
        hub.stop()
        first.stop()
        hub.store.close()

        watch = MqttTransport(client_id="watch-1", port=password_port, clean_session=True,
                              security=broker.password("watch-1"))
        watch.start(wait_s=5)
        alerts = [factories.alert(device="watch-1", patient="pt-1") for _ in range(ALERTS)]
        for alert in alerts:
            watch.publish(topics.alert(SITE, "pt-1", "watch-1"), encode(alert))
        # every PUBACK in: the broker has them all (a stop that closed the socket with PUBACKs still coming back
        # met a reset that discarded the publishes the broker had not read yet: 6 or 7 of 8 under the whole suite)
        assert watch.wait_acknowledged(30)
        # Mosquitto saves (to a new file, renamed over the old) at the end of the loop pass that queued the last
        # alert, after sending its PUBACK. A SUBACK is a later pass's answer, so that save has been made; killing
        # it during a later save leaves the renamed file whole. The file must also rest for a second, in case a
        # pass reads more than one packet.
        watch.subscribe(topics.cmd(SITE, "pt-1", "watch-1"), lambda _topic, _payload: None)
        assert watch.wait_subscribed(30)
        watch.stop()
        saved = tmp_path / "data" / "mosquitto.db"
        assert wait_until(lambda: saved.exists() and time.time() - saved.stat().st_mtime >= 1.0, 30)
        assert broker.process is not None
        broker.process.send_signal(signal.SIGKILL)
        broker.process.wait(timeout=10)
        broker.process = None
        broker.start()

        second = edge_transport()
        revived = EdgeHub(settings, second, store=EdgeStore(tmp_path / "edge.db"))
        revived.start()
        second.start(wait_s=5)
        deadline = time.monotonic() + 30  # a loaded machine (the whole suite) redelivers slowly
        while revived.store.counts()["episodes"] < ALERTS and time.monotonic() < deadline:
            time.sleep(0.1)
        got = revived.store.counts()["episodes"]
        record_fault("broker killed -9 with alerts queued for an offline edge (persistence on)",
                     f"all {ALERTS} alerts reach the edge when it returns", f"{got} of {ALERTS}")
        revived.stop()
        second.stop()
        assert got == ALERTS
    finally:
        broker.stop()


def test_a_broker_that_loses_everything_still_loses_no_alert_the_watch_keeps_it_until_answered(
        tmp_path: Path) -> None:
    """No persistence at all, killed -9 with alerts queued for an absent edge: the broker forgets them, and the
    watches send them again because no edge ever said it holds them (`watch_agent.awaiting`)."""
    mosquitto_binary()
    tls_port, password_port = _free_port(), _free_port()
    provision(tmp_path / "pki", SITE, 1, tls_port=tls_port, password_port=password_port,
              run_as=getpass.getuser() if os.geteuid() == 0 else None)
    broker = Broker(tmp_path / "pki", tls_port, password_port)
    broker.start()
    settings = Settings(site=SITE, state_dir=tmp_path / "edge", analysis_timeout_s=60, edge_analysis=False,
                        data_dir=None)
    edge_id = f"{SITE}-edge-1"

    def edge_transport() -> MqttTransport:
        return MqttTransport(client_id=edge_id, port=password_port, security=broker.password(edge_id))

    ecg = synthetic(130.0, MODEL_FS, episodes=[SyntheticEpisode("pause", t, 4.0) for t in (20.0, 50.0, 80.0)],
                       seed=5)
    config = WatchConfig(device_id="watch-1", patient_id="pt-1", phone_id=None, stream_ref="synthetic")
    watch_transport = MqttTransport(client_id="watch-1", port=password_port, security=broker.password("watch-1"))
    watch = WatchAgent(settings, watch_transport, config, Replay(ecg, loop=False),
                       awaiting=AwaitingAnswers(tmp_path / "awaiting.db", first_resend_s=1, max_resend_s=2))
    revived: EdgeHub | None = None
    second: MqttTransport | None = None
    try:
        first = edge_transport()  # the edge's session and subscriptions, then it goes away
        hub = EdgeHub(settings, first, store=EdgeStore(tmp_path / "edge.db"))
        hub.start()
        first.start(wait_s=5)
        assert first.wait_subscribed(5)
        hub.stop()
        first.stop()
        hub.store.close()

        watch.start(run=False)
        watch_transport.start(wait_s=5)
        assert watch_transport.wait_subscribed(5)
        while (chunk := watch.replay.next_chunk()) is not None:
            watch.process(chunk)
        sent = watch.counters.get("alerts.clinical")
        assert sent >= 2 and len(watch.awaiting) == sent  # acked by the broker, answered by nobody
        assert broker.process is not None
        broker.process.send_signal(signal.SIGKILL)
        broker.process.wait(timeout=10)
        broker.process = None
        broker.start()  # empty: no persistence

        second = edge_transport()
        revived = EdgeHub(settings, second, store=EdgeStore(tmp_path / "edge.db"))
        revived.start()
        second.start(wait_s=5)
        assert second.wait_subscribed(5)
        assert wait_until(lambda: len(watch.awaiting) == 0, 30), f"{len(watch.awaiting)} still unanswered"
        got = revived.store.counts()["episodes"]
        record_fault("broker killed -9 with no persistence, alerts queued for an offline edge",
                     f"the watch sends again what no edge answered: all {sent} reach the edge, each once",
                     f"{got} of {sent} at the edge, resent {watch.counters.get('alerts.resent')}, "
                     f"unanswered {len(watch.awaiting)}")
        assert got == sent
    finally:
        watch.stop()
        watch_transport.stop()
        if revived is not None:
            revived.stop()
        if second is not None:
            second.stop()
        broker.stop()
