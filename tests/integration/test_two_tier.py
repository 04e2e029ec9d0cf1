"""Two tiers of brokers: a site Mosquitto bridged to a central one (`cardiomesh bridge-config`), each started
here with its own configuration on free ports. Watches, phones and the edge live on the site broker; cloud
ingest (PostgreSQL) and a real Celery worker on the central one. A drill passes through both, and with the
link between them cut for 30 s, every escalation still reaches the cloud once and every report comes back."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cardiomesh.bridge import bridge_conf
from cardiomesh.drill import run_drill
from cloud_expert.db import Episode
from cloud_expert.service import CloudService
from cloud_expert.worker.celery_app import make_app
from cloud_expert.worker.enqueue import celery_enqueuer
from edge_hub.app import EdgeHub
from phone_agent.app import PhoneFleet
from shared import topics
from shared.messages import DecodeError, EscalationMessage, ReportMessage, decode, encode
from shared.settings import Settings
from shared.transport import MqttTransport, Will
from shared.transport.mqtt import broker_answers
from tests import factories
from tests.cardiomesh.test_provision import _free_port
from tests.cloud_expert.worker.helpers import celery_worker
from tests.conftest import mosquitto_binary
from tests.integration.faults import record_fault
from tests.integration.tcp_proxy import CuttableLink
from tests.waiting import wait_until
from watch_agent.fleet import WatchFleet, WatchSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUT_S = 30.0
BEFORE, DURING = 4, 10


@contextmanager
def _mosquitto(folder: Path, port: int, extra: str = "") -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {folder}/\nautosave_interval 1\nlog_dest stderr\n"
                    + ("user root\n" if os.geteuid() == 0 else "") + extra)
    log = (folder / "mosquitto.log").open("wb")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: broker_answers("127.0.0.1", port, 0.2), 10), (folder / "mosquitto.log").read_text()
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


class _Seen:
    """Escalations and reports seen on one broker, by alert id."""

    def __init__(self) -> None:
        self.escalations: set[str] = set()
        self.reports: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, _topic: str, raw: bytes) -> None:
        try:
            message = decode(raw, max_bytes=1 << 22)
        except DecodeError:
            return
        with self._lock:
            if isinstance(message, EscalationMessage):
                self.escalations.add(message.payload.alert_id)
            elif isinstance(message, ReportMessage):
                self.reports.add(message.payload.alert_id)


def test_a_site_bridged_to_the_centre_loses_nothing_when_the_link_is_cut(
        tmp_path: Path, pg_schema_url: str, redis_url: str, unique: str) -> None:
    site, queue = f"tt{unique}", f"reports-{unique}"
    central_port, site_port = _free_port(), _free_port()
    with _mosquitto(tmp_path / "central", central_port):
        link = CuttableLink(("127.0.0.1", central_port))
        bridge = bridge_conf(site, central_host="127.0.0.1", central_port=link.port)
        with _mosquitto(tmp_path / "site", site_port, bridge):
            def settings(where: str, port: int) -> Settings:
                return Settings(site=site, database_url=pg_schema_url, celery_broker_url=redis_url,
                                analysis_timeout_s=3.0, edge_analysis=False, state_dir=tmp_path / where,
                                mqtt_url=f"mqtt://127.0.0.1:{port}")

            at_site, at_centre = settings("site-state", site_port), settings("cloud-state", central_port)

            def on_site(client_id: str, will: Will | None = None, online: Will | None = None) -> MqttTransport:
                return MqttTransport(client_id=f"{site}-{client_id}", port=site_port, will=will, online=online)

            env = {"CARDIOMESH_DATABASE_URL": pg_schema_url, "CARDIOMESH_CELERY_BROKER_URL": redis_url,
                   "CARDIOMESH_STATE_DIR": str(tmp_path / "worker")}
            seen_site, seen_centre = _Seen(), _Seen()
            with celery_worker(queue=queue, env=env, log_path=tmp_path / "worker.log"):
                cloud = CloudService(at_centre, MqttTransport(client_id=f"cloud-{unique}", port=central_port),
                                     ingest_group=f"cloud-{unique}",
                                     enqueue=celery_enqueuer(make_app(at_centre, queue=queue), queue=queue))
                cloud.start()
                spy_site = MqttTransport(client_id=f"spy-site-{unique}", port=site_port, clean_session=True)
                spy_site.subscribe(topics.everything(site), seen_site)
                spy_centre = MqttTransport(client_id=f"spy-centre-{unique}", port=central_port, clean_session=True)
                spy_centre.subscribe(topics.everything(site), seen_centre)
                edge_transport = on_site("edge-1")
                hub = EdgeHub(at_site, edge_transport)
                hub.start()
                phones = PhoneFleet(at_site, on_site)
                fleet = WatchFleet(at_site, on_site, [WatchSpec("synthetic")], speed=3.0)
                watch = on_site("scripted-watch")
                parts = [spy_site, spy_centre, edge_transport, watch]
                try:
                    for part in parts:
                        part.start(wait_s=5)
                    phones.start()
                    fleet.start()
                    # a drill, requested at the site: its report is rendered at the centre and comes back
                    drill = run_drill(at_site, "vt", timeout_s=120.0)
                    assert drill.report_urls and {h.name for h in drill.hops} >= {"edge escalation",
                                                                                  "report rendered"}
                    fleet.stop()
                    phones.stop()

                    def publish(n: int) -> list[str]:
                        alerts = [factories.alert(device="watch-9", patient="pt-tt") for _ in range(n)]
                        for alert in alerts:
                            watch.publish(topics.alert(site, "pt-tt", "watch-9"), encode(alert))
                        return [a.payload.alert_id for a in alerts]

                    def stored() -> int:
                        with cloud.sessions() as session:
                            return int(session.scalar(select(func.count()).select_from(Episode)
                                                      .where(Episode.patient_id == "pt-tt")) or 0)

                    first = publish(BEFORE)
                    assert wait_until(lambda: stored() == BEFORE, 30), stored()
                    link.cut()
                    cut_at = time.monotonic()
                    during = publish(DURING)
                    assert wait_until(lambda: set(during) <= seen_site.escalations, 20), "the edge did not escalate"
                    time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
                    assert stored() == BEFORE and not set(during) & seen_centre.escalations  # the link was down
                    link.restore()
                    restored_at = time.monotonic()
                    assert wait_until(lambda: stored() == BEFORE + DURING, 60), stored()
                    caught_up_s = time.monotonic() - restored_at
                    wanted = set(first) | set(during)
                    assert wait_until(lambda: wanted <= seen_site.reports, 90), len(wanted - seen_site.reports)
                finally:
                    for part in reversed(parts):
                        part.stop()
                    fleet.stop()
                    phones.stop()
                    hub.stop()
                    cloud.stop()
                    link.close()
    record_fault("site–centre link cut 30 s (bridged brokers)",
                 f"{BEFORE + DURING} escalations, each stored once at the centre; every report back at the site",
                 f"stored {BEFORE + DURING} of {BEFORE + DURING}, reports back {len(wanted & seen_site.reports)}, "
                 f"centre caught up {caught_up_s:.1f} s after the link returned")
