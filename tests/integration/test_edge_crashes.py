"""The edge hub killed (os._exit, no cleanup) at each step of its work, as a real process on the real broker.

For every crash point: the hub dies mid-alert, comes back, and the alert is answered and escalated; the
cloud (in-process, on the same broker) holds exactly one episode and one report job for it. Each case
adds a row to the fault table (`docs/faults.md`, `tests/integration/faults.py`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cloud_expert.db import Episode, ReportJob
from cloud_expert.service import CloudService
from edge_hub.app import CRASH_POINTS
from shared import topics
from shared.messages import (
    CommandMessage,
    DecodeError,
    Envelope,
    EscalationMessage,
    TriageMessage,
    decode,
    encode,
)
from shared.settings import Settings
from shared.transport import MqttTransport
from tests import factories
from tests.integration.faults import record_fault
from tests.integration.processes import Component
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Observer:
    """Everything on the site's topics, decoded."""

    def __init__(self, host: str, port: int, site: str, name: str) -> None:
        self.messages: list[Envelope] = []
        self._lock = threading.Lock()
        self.transport = MqttTransport(client_id=name, host=host, port=port, clean_session=True)
        self.transport.subscribe(topics.everything(site), self._keep, qos=1)
        self.transport.start(wait_s=5)
        assert self.transport.wait_subscribed(5)

    def _keep(self, _topic: str, raw: bytes) -> None:
        try:
            message = decode(raw, max_bytes=1 << 22)
        except DecodeError:
            return
        with self._lock:
            self.messages.append(message)

    def of(self, kind: type[Envelope], alert_id: str) -> list[Any]:
        with self._lock:
            found = [m for m in self.messages if isinstance(m, kind)]
        return [m for m in found if getattr(getattr(m, "payload", None), "alert_id", None) == alert_id]




def _edge(state: Path, site: str, mqtt_url: str) -> Component:
    """`cardiomesh edge` with its own state dir and site."""
    env = {**os.environ, "CARDIOMESH_STATE_DIR": str(state), "CARDIOMESH_SITE": site,
           "CARDIOMESH_MQTT_URL": mqtt_url, "CARDIOMESH_ANALYSIS_TIMEOUT_S": "1",
           "CARDIOMESH_EDGE_ANALYSIS": "false", "CARDIOMESH_LOG_LEVEL": "WARNING"}
    return Component(["edge"], env, ready="serving site")


@pytest.fixture
def site(unique: str) -> str:
    return f"f{unique}"


@pytest.fixture
def cloud(settings: Settings, mosquitto: tuple[str, int], site: str, unique: str) -> Iterator[CloudService]:
    host, port = mosquitto
    cfg = settings.model_copy(update={"mqtt_url": f"mqtt://{host}:{port}", "site": site})
    transport = MqttTransport(client_id=f"cloud-{unique}", host=host, port=port, clean_session=True)
    service = CloudService(cfg, transport, enqueue=lambda _job: None, ingest_group=None, loop_interval_s=None)
    service.start()
    assert transport.wait_subscribed(5)
    yield service
    service.stop()


def _count(service: CloudService, model: type, alert_id: str) -> int:
    column = Episode.id if model is Episode else ReportJob.episode_id
    with service.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(column == alert_id)) or 0)


def test_an_edge_killed_at_each_step_loses_and_doubles_nothing(
    tmp_path: Path, mosquitto: tuple[str, int], site: str, unique: str, cloud: CloudService
) -> None:
    host, port = mosquitto
    observer = Observer(host, port, site, f"obs-{unique}")
    watch = MqttTransport(client_id=f"watch-{unique}", host=host, port=port, clean_session=True)
    watch.start(wait_s=5)
    edge = _edge(tmp_path / "edge", site, f"mqtt://{host}:{port}")
    try:
        edge.start()  # a first, clean run: the hub's persistent session and subscriptions exist from now on
        edge.stop()
        for point in CRASH_POINTS:
            alert = factories.alert(device="watch-1", patient=f"pt-{unique}")
            alert_id = alert.payload.alert_id
            edge.start(crash_at=point)
            watch.publish(topics.alert(site, f"pt-{unique}", "watch-1"), encode(alert))
            assert edge.wait_exit(20) == 86, f"the hub did not die at {point}"
            edge.start()  # back, as after a crash
            def stored(aid: str = alert_id) -> bool:
                return _count(cloud, Episode, aid) == 1

            escalated = wait_until(stored, 20)
            sent = {m.payload.command for m in observer.of(CommandMessage, alert_id)}
            acked, commands = bool(sent), sent - {"alert_received"}  # any command naming the alert answers it
            initial = [t for t in observer.of(TriageMessage, alert_id) if t.payload.stage == "initial"]
            observed = (f"escalations {len(observer.of(EscalationMessage, alert_id))}, cloud episodes "
                        f"{_count(cloud, Episode, alert_id)}, report jobs {_count(cloud, ReportJob, alert_id)}, "
                        f"commands {sorted(commands)}, initial triage {'yes' if initial else 'no'}, "
                        f"watch told it is held {'yes' if acked else 'no'}")
            record_fault(f"edge killed {point.replace('_', ' ')}",
                         "answered (notify, stream), watch told its alert is held, escalated, one cloud "
                         "episode and one report job", observed)
            assert escalated, observed
            assert commands == {"notify_wearer", "stream_strip"} and initial and acked, observed
            assert _count(cloud, ReportJob, alert_id) == 1, observed
            edge.stop()
    finally:
        edge.stop()
        watch.stop()
        observer.transport.stop()
