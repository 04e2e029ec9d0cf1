"""The whole clinical path on the real services: Mosquitto, Redis, PostgreSQL and a real Celery worker.

Watches replay MIT-BIH segments with annotated ventricular tachycardia (203, 207) and atrial
fibrillation (201); the test follows every alert to its end: phone findings, edge triage and
response command, escalation, rendered report — all under one trace_id, nothing lost.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from cloud_expert.service import CloudService
from cloud_expert.worker.celery_app import make_app
from cloud_expert.worker.enqueue import celery_enqueuer
from edge_hub.app import EdgeHub
from phone_agent.app import PhoneFleet
from shared import topics
from shared.ecg.annotations import load_annotations
from shared.messages import (
    AlertMessage,
    AnalysisMessage,
    CommandMessage,
    DecodeError,
    Envelope,
    EscalationMessage,
    ReportMessage,
    TriageMessage,
    decode,
)
from shared.settings import Settings
from shared.transport import MqttTransport, Will
from tests.cloud_expert.worker.helpers import celery_worker
from watch_agent.fleet import WatchFleet, WatchSpec

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]

LEAD_IN_S = 12.0
VT_KINDS = {"wide_complex_run", "tachycardia"}
EXPECTED = {"watch-1": VT_KINDS, "watch-2": VT_KINDS, "watch-3": {"irregular_rhythm"}}  # 203, 207, 201


def _episode_start(mitdb: Path, record: str, rhythm: str) -> float:
    intervals = [i for i in load_annotations(mitdb / record).rhythms if i.rhythm == rhythm]
    assert intervals, f"record {record} has no annotated {rhythm}"
    return max(0.0, intervals[0].start_s - LEAD_IN_S)


def test_alert_to_report_on_real_services(mosquitto: tuple[str, int], redis_url: str, pg_schema_url: str,
                                          mitdb: Path, tmp_path: Path, unique: str) -> None:
    host, port = mosquitto
    site, queue = f"it{unique}", f"reports-{unique}"
    settings = Settings(site=site, state_dir=tmp_path, mqtt_url=f"mqtt://{host}:{port}", database_url=pg_schema_url,
                        celery_broker_url=redis_url, analysis_timeout_s=8.0)
    specs = [WatchSpec(str(mitdb / "203"), _episode_start(mitdb, "203", "VT")),
             WatchSpec(str(mitdb / "207"), _episode_start(mitdb, "207", "VT")),
             WatchSpec(str(mitdb / "201"), _episode_start(mitdb, "201", "AFIB"))]

    by_trace: dict[str, list[Envelope]] = defaultdict(list)
    lock = threading.Lock()

    def collect(_topic: str, raw: bytes) -> None:
        try:
            message = decode(raw, max_bytes=settings.max_payload_bytes)
        except DecodeError:
            return
        with lock:
            by_trace[message.trace_id].append(message)

    def make(client_id: str, will: Will | None, online: Will | None) -> MqttTransport:
        return MqttTransport(client_id=f"{site}-{client_id}", host=host, port=port, will=will, online=online)

    env = {"CARDIOMESH_DATABASE_URL": pg_schema_url, "CARDIOMESH_CELERY_BROKER_URL": redis_url,
           "CARDIOMESH_STATE_DIR": str(tmp_path)}
    with celery_worker(queue=queue, env=env, log_path=tmp_path / "worker.log"):
        spy = MqttTransport(client_id=f"{site}-spy", host=host, port=port, clean_session=True)
        spy.subscribe(topics.everything(site), collect)
        spy.start(wait_s=5)
        cloud = CloudService(settings, make("cloud", None, None),
                             enqueue=celery_enqueuer(make_app(settings, queue=queue), queue=queue),
                             ingest_group=f"cloud-{unique}")  # stale sessions in a shared group would take a share
        cloud.start()
        edge_transport = make("edge", None, None)
        hub = EdgeHub(settings, edge_transport)
        hub.start()
        edge_transport.start(wait_s=5)
        phones = PhoneFleet(settings, make)
        phones.start()
        fleet = WatchFleet(settings, make, specs, speed=6.0, loop=False)
        try:
            fleet.start()

            def alerts_by_watch() -> dict[str, list[AlertMessage]]:
                with lock:
                    found: dict[str, list[AlertMessage]] = defaultdict(list)
                    for messages in by_trace.values():
                        for m in messages:
                            if isinstance(m, AlertMessage):
                                found[m.source].append(m)
                    return found

            def kinds() -> dict[str, set[str]]:
                return {watch: {a.payload.kind for a in alerts} for watch, alerts in alerts_by_watch().items()}

            deadline = time.monotonic() + 120
            while not all(kinds().get(w, set()) & k for w, k in EXPECTED.items()) and time.monotonic() < deadline:
                time.sleep(0.5)
            fleet.stop()  # no new alerts from here on; let every open one reach its end
            for watch, expected in EXPECTED.items():
                assert kinds().get(watch, set()) & expected, f"{watch}: {kinds().get(watch)}, wanted {expected}"

            def finished(trace: str) -> bool:
                with lock:
                    kinds = {type(m) for m in by_trace[trace]}
                    triaged = [m for m in by_trace[trace]
                               if isinstance(m, TriageMessage) and m.payload.stage == "final"]
                return bool(triaged) and (triaged[0].payload.level == "info" or ReportMessage in kinds)

            traces = [a.trace_id for alerts in alerts_by_watch().values() for a in alerts]
            deadline = time.monotonic() + 60
            while not all(finished(t) for t in traces) and time.monotonic() < deadline:
                time.sleep(0.25)
        finally:
            fleet.stop()
            phones.stop()
            hub.stop()
            edge_transport.stop()
            cloud.stop()
            spy.stop()

    lost = [t for t in traces if not finished(t)]
    seen = {t: [m.type + (f":{m.payload.stage}:{m.payload.level}" if isinstance(m, TriageMessage) else "")
                for m in by_trace[t]] for t in lost}
    assert not lost, f"{len(lost)} of {len(traces)} alerts never reached their end: {seen}"
    reported = 0
    for trace in traces:
        messages = by_trace[trace]
        assert all(m.trace_id == trace for m in messages)
        assert any(isinstance(m, AnalysisMessage) for m in messages), "no phone findings"
        final = next(m for m in messages if isinstance(m, TriageMessage) and m.payload.stage == "final")
        if final.payload.level != "info":
            assert any(isinstance(m, CommandMessage) for m in messages), "no rapid-response command"
            assert any(isinstance(m, EscalationMessage) for m in messages)
            assert any(isinstance(m, ReportMessage) for m in messages)
            reported += 1
    assert reported >= 2
