"""Report throughput and latency: escalation stored by the cloud → report rendered (HTML + PDF + assessment).

Real pieces: the cloud's ingest (`CloudService`, fed through an in-memory bus so MQTT is not what is
measured), Redis as the Celery broker, PostgreSQL as the DB, and ONE Celery worker process running a
prefork pool of 2 (`-c 2`, the machine's 2 shared cores). Falls back to the single-machine defaults
(filesystem broker + SQLite) when Redis or PostgreSQL is not answering, and says so in the result.

Escalations carry realistic 30 s strips (360 Hz), phone findings with the clinical-depth fields, and
come from 10 patients, so every report also queries that patient's history.

Two phases: a burst (all escalations at once: reports per minute at saturation, with queueing in the
latency) and a paced run (one escalation every `--interval-s`: latency without a backlog).
Latency = job `finished_at` (report row committed) − episode `received_at` (escalation stored).

    .venv/bin/python bench/reports.py [--escalations 60] [--paced 30] [--interval-s 1.0]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bench._common import ROOT, percentile, write_result
from cloud_expert.db import Episode, ReportJob, upgrade_to_head
from cloud_expert.service import CloudService
from cloud_expert.worker.celery_app import make_app
from cloud_expert.worker.enqueue import celery_enqueuer
from shared import topics
from shared.messages import encode
from shared.settings import Settings
from shared.transport import InMemoryBus, Transport
from tests.cloud_expert.factories import make_escalation

REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = os.environ.get("CARDIOMESH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PATIENTS = 10
RHYTHMS = ["af", "sinus", "vt", "sinus_bradycardia", "sinus_tachycardia"]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _escalation(i: int, site: str, tag: str) -> Any:
    rhythm = RHYTHMS[i % len(RHYTHMS)]
    hr = {"af": 118.0, "sinus": 72.0, "vt": 170.0, "sinus_bradycardia": 38.0, "sinus_tachycardia": 150.0}[rhythm]
    fields = {"hr_bpm": hr, "rhythm": rhythm, "rhythm_confidence": 0.8, "pr_ms": None if rhythm == "af" else 180.0,
              "qrs_ms": 140.0 if rhythm == "vt" else 96.0, "qt_ms": 400.0, "qtc_bazett_ms": 455.0 + (i % 7) * 10,
              "qtc_fridericia_ms": 445.0 + (i % 7) * 10, "ventricular_run_beats": 12 if rhythm == "vt" else 0,
              "max_rr_s": 3.2 if rhythm == "sinus_bradycardia" else 1.0, "duration_s": 30.0}
    return make_escalation(site=site, patient_id=f"bench-{tag}-{i % PATIENTS}", hr_bpm=hr, strip_seconds=30.0,
                           analysis_fields=fields, drill=i % 20 == 19)


def _worker(env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "cloud_expert.worker.celery_app", "worker", "--pool=prefork",
               "-c", "2", "--without-heartbeat", "--without-gossip", "--without-mingle", "-Q", queue,
               "-n", f"{queue}@%h", "-l", "WARNING"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CARDIOMESH_")}
    full = {**clean, **env, "CARDIOMESH_CELERY_QUEUE": queue, "CARDIOMESH_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(command, cwd=ROOT, env=full, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _phase(service: CloudService, edge: Transport, site: str, tag: str, n: int, interval_s: float,
           offset: int) -> dict[str, Any]:
    ids: list[str] = []
    t0 = time.perf_counter()
    for i in range(n):
        msg = _escalation(offset + i, site, tag)
        ids.append(msg.payload.alert_id)
        edge.publish(topics.escalation(site, msg.patient_id or "x", msg.source), encode(msg), qos=1)
        if interval_s:
            time.sleep(max(0.0, t0 + (i + 1) * interval_s - time.perf_counter()))
    deadline = time.monotonic() + 60 + n * 5
    while time.monotonic() < deadline:
        with service.sessions() as session:
            rows = session.execute(select(Episode.received_at, ReportJob.finished_at, ReportJob.status)
                                   .join(ReportJob, ReportJob.episode_id == Episode.id)
                                   .where(Episode.id.in_(ids))).all()
        if len(rows) == n and all(status == "done" for _, _, status in rows):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError(f"only {sum(s == 'done' for _, _, s in rows)}/{n} reports after the deadline")
    done = [(received, finished) for received, finished, _ in rows if finished is not None]
    latencies = [(finished - received) / timedelta(milliseconds=1) for received, finished in done]
    span_s = (max(f for _, f in done) - min(r for r, _ in done)).total_seconds()
    return {"reports": n, "span_s": round(span_s, 2), "reports_per_min": round(n / span_s * 60, 1),
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1)}


def run(n_burst: int, n_paced: int, interval_s: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    queue, site = f"bench-reports-{tag}", f"bench{tag}"
    with tempfile.TemporaryDirectory() as state:
        use_real = _answers(6379) and _answers(5432)
        schema = f"bench_{tag}"
        if use_real:
            plain = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            db_url = make_url(POSTGRES_URL).update_query_dict(
                {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
            settings = Settings(state_dir=Path(state), site=site, database_url=db_url, celery_broker_url=REDIS_URL)
            backend = "Redis 127.0.0.1:6379 + PostgreSQL 127.0.0.1:5432"
        else:
            settings = Settings(state_dir=Path(state), site=site)
            backend = "filesystem broker + SQLite (Redis/PostgreSQL not answering)"
        db = settings.effective_database_url
        upgrade_to_head(db)
        env = {"CARDIOMESH_DATABASE_URL": db, "CARDIOMESH_STATE_DIR": state}
        if settings.celery_broker_url:
            env["CARDIOMESH_CELERY_BROKER_URL"] = settings.celery_broker_url
        log = Path(state) / "worker.log"
        worker = _worker(env, queue, log)
        bus = InMemoryBus()
        service = CloudService(settings, bus.transport("cloud"), loop_interval_s=None, ingest_group=None,
                               enqueue=celery_enqueuer(make_app(settings, queue=queue), queue=queue))
        service.start()
        edge = bus.transport(f"edge-{tag}")
        try:
            _phase(service, edge, site, tag, 2, 0.0, 10_000)  # worker start-up and imports: not measured
            burst = _phase(service, edge, site, tag, n_burst, 0.0, 0)
            paced = _phase(service, edge, site, tag, n_paced, interval_s, n_burst)
        finally:
            service.stop()
            worker.terminate()
            worker.wait(timeout=30)
            if use_real:
                with psycopg.connect(plain, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {
        "backend": backend, "worker": "1 Celery worker, prefork pool -c 2", "strip": "30 s at 360 Hz",
        "patients": PATIENTS, "cpus": os.cpu_count(), "burst": burst,
        "paced": {**paced, "interval_s": interval_s},
        "latency": "job finished_at (report row committed) - episode received_at (escalation stored)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--escalations", type=int, default=60, help="burst size (all sent at once)")
    parser.add_argument("--paced", type=int, default=30, help="escalations in the paced phase")
    parser.add_argument("--interval-s", type=float, default=1.0, help="gap between paced escalations")
    args = parser.parse_args()
    result = run(args.escalations, args.paced, args.interval_s)
    b, p = result["burst"], result["paced"]
    write_result("reports", result, [
        ("backend", result["backend"]), ("worker", result["worker"]), ("strips", result["strip"]),
        ("burst: reports", str(b["reports"])), ("burst: reports/min", str(b["reports_per_min"])),
        ("burst: p50 / p95 escalation→report", f"{b['p50_ms']:.0f} / {b['p95_ms']:.0f} ms"),
        (f"paced (1 per {p['interval_s']} s): p50 / p95", f"{p['p50_ms']:.0f} / {p['p95_ms']:.0f} ms"),
        ("paced: max", f"{p['max_ms']:.0f} ms"),
    ])


if __name__ == "__main__":
    main()
