"""The cloud ingest service: escalations from the bus into the DB, report jobs to Celery, reports back out.

Order matters: an escalation is committed before its job is enqueued (the worker must find the row),
and a report is announced before it is marked announced (at-least-once; the announcement's message id
is the report id, so consumers dedupe a repeat). A background loop announces finished reports and
sweeps jobs that were lost (broker down at enqueue time, worker crash, render failure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import (
    Episode,
    Label,
    Report,
    ReportJob,
    encryption,
    make_engine,
    make_session_factory,
    upgrade_to_head,
)
from cloud_expert.ingest import store_escalation
from cloud_expert.telemetry import store_disclosure, store_summary
from shared import topics
from shared.faults import crash_point
from shared.messages import (
    DisclosureMessage,
    EscalationMessage,
    Hop,
    LabelMessage,
    ReportMessage,
    SummaryMessage,
    utcnow,
)
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Router, Transport

log = logging.getLogger(__name__)

SERVICE_ID = "cloud"
INGEST_GROUP = "cloud-ingest"
REPORT_HOP = "report_rendered"
#: A job is handed to Celery at most this often before it is left as failed for a person to look at.
MAX_ATTEMPTS = 5
LOOP_INTERVAL_S = 0.5


class CloudService:
    """Subscribes to escalations (shared subscription), stores them, enqueues and announces reports."""

    def __init__(
        self, settings: Settings, transport: Transport, *, enqueue: Callable[[str], None] | None = None,
        enqueue_emergency: Callable[[str], None] | None = None, enqueue_routine: Callable[[str], None] | None = None,
        manage_transport: bool = True, now: Callable[[], datetime] = utcnow,
        loop_interval_s: float | None = LOOP_INTERVAL_S, ingest_group: str | None = INGEST_GROUP,
    ) -> None:
        """`enqueue` defaults to the configured Celery app; `loop_interval_s=None` leaves `tick()` to the caller;
        instances sharing `ingest_group` split the escalations between them; `None` subscribes plainly (one
        instance only — the embedded amqtt broker has no shared subscriptions)."""
        self.settings = settings
        self.transport = transport
        self.counters = Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self._enqueue_fn = enqueue
        # emergencies on their own queue; a caller that gives one `enqueue` (tests) gets it for both
        self._enqueue_emergency_fn = enqueue_emergency or enqueue
        self._enqueue_routine_fn = enqueue_routine or enqueue  # info-level reports: after the urgent ones
        self._manage_transport = manage_transport
        self._now = now
        self._interval = loop_interval_s
        self._group = ingest_group
        self._sessions: sessionmaker[Session] | None = None
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._last_seq = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        url = self.settings.effective_database_url
        encryption.configure(self.settings.data_keys)
        upgrade_to_head(url)
        self._engine = make_engine(url)
        self._sessions = make_session_factory(self._engine)
        if self._enqueue_fn is None:
            from cloud_expert.worker.enqueue import (  # imports Celery only when used
                default_emergency_enqueuer,
                default_enqueuer,
                default_routine_enqueuer,
            )

            self._enqueue_fn = default_enqueuer()
            self._enqueue_emergency_fn = self._enqueue_emergency_fn or default_emergency_enqueuer()
            self._enqueue_routine_fn = self._enqueue_routine_fn or default_routine_enqueuer()
        any_ = topics.ANY
        for pattern, model, handler in (
            (topics.escalation(any_, any_, any_), EscalationMessage, self._on_escalation),
            (topics.disclosure(any_, any_, any_), DisclosureMessage, self._on_disclosure),
            (topics.summary(any_, any_, any_), SummaryMessage, self._on_summary),
        ):
            self.router.on(pattern if self._group is None else topics.shared(self._group, pattern), model,
                           handler)  # type: ignore[arg-type]
        self.counters.gauge("report_jobs_waiting", self._jobs_waiting)
        backlog = getattr(self.transport, "outbox_backlog", None)
        if backlog is not None:
            self.counters.gauge("outbox_backlog", backlog)
        if self._manage_transport:
            self.transport.start()
        self._stop.clear()
        if self._interval is not None:
            self._loop = threading.Thread(target=self._run_loop, args=(self._interval,), name="cloud-reports",
                                          daemon=True)
            self._loop.start()
        log.info("cloud service started", extra={"client_id": self.transport.client_id})

    def stop(self) -> None:
        self._stop.set()
        self.router.close()
        if self._loop is not None:
            self._loop.join(timeout=5)
        if self._manage_transport:
            self.transport.stop()
        if self._sessions is not None:
            self._engine.dispose()

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            raise RuntimeError("CloudService.start() was not called")
        return self._sessions

    def _jobs_waiting(self) -> int:
        """Report jobs queued or being rendered (a scrape-time gauge)."""
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ReportJob)
                                      .where(ReportJob.status.in_(("queued", "running")))) or 0)

    # -- ingest ----------------------------------------------------------------------------------
    def _on_escalation(self, parts: topics.TopicParts, msg: EscalationMessage) -> None:
        started = time.perf_counter()
        now = self._now()
        self.counters.observe("escalation_transit_ms", max(0.0, (now - msg.created_at).total_seconds() * 1000))
        with self.sessions() as session:
            episode, job, created = store_escalation(session, msg, now, service_id=SERVICE_ID)
            session.commit()
        self.counters.observe("ingest_ms", (time.perf_counter() - started) * 1000)
        crash_point("cloud_after_store")  # stored, neither enqueued nor acked: the sweeper must enqueue it
        extra = {"trace_id": msg.trace_id, "alert_id": episode.id, "job_id": job.id}
        if not created:
            self.counters.inc("duplicates")
            log.info("duplicate escalation ignored", extra={**extra, "message_id": msg.id})
            return
        self.counters.inc("stored")
        self._enqueue(job.id, extra, level=msg.payload.level)

    def _on_disclosure(self, parts: topics.TopicParts, msg: DisclosureMessage) -> None:
        with self.sessions() as session:
            new = store_disclosure(session, parts.site, msg, self._now())
            session.commit()
        self.counters.inc("disclosures.stored" if new else "disclosures.duplicate")

    def _on_summary(self, parts: topics.TopicParts, msg: SummaryMessage) -> None:
        if msg.drill:
            self.counters.inc("rejected.drill_summary")
            log.warning("drill-marked summary refused: drills never enter a trend", extra={"trace_id": msg.trace_id})
            return
        with self.sessions() as session:
            new = store_summary(session, parts.site, msg, self._now())
            session.commit()
        self.counters.inc("summaries.stored")
        self.counters.inc("hr_minutes.stored", new)

    def _enqueue(self, job_id: str, extra: dict[str, str], *, level: str) -> None:
        """Hand a committed job to Celery (an emergency's to the emergency queue); when the broker is down the
        sweeper tries again later."""
        emergency = level == "emergency" and self._enqueue_emergency_fn is not None
        routine = level == "info" and self._enqueue_routine_fn is not None
        enqueue = (self._enqueue_emergency_fn if emergency else self._enqueue_routine_fn if routine
                   else self._enqueue_fn)
        assert enqueue is not None
        try:
            enqueue(job_id)
        except Exception:  # any broker/transport failure: the DB row keeps the job, the sweeper retries
            self.counters.inc("enqueue_failed")
            log.exception("enqueue failed; the sweeper will retry", extra=extra)
        else:
            self.counters.inc("enqueued.emergency" if emergency else "enqueued.routine" if routine else "enqueued")

    # -- background loop -------------------------------------------------------------------------
    def _run_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.tick()

    def tick(self) -> None:
        """One pass of the loop: announce finished reports, re-enqueue lost jobs. Never raises."""
        for step in (self.announce_reports, self.sweep_jobs, self.publish_labels):
            try:
                step()
            except Exception:  # DB unreachable or a bug: log, count, try again next tick
                self.counters.inc("loop_errors")
                log.exception("background step failed", extra={"step": step.__name__})

    def announce_reports(self) -> int:
        """Publish a ReportMessage for every done, unannounced job; returns how many were announced."""
        with self.sessions() as session:
            rows = session.execute(
                select(ReportJob, Report, Episode)
                .join(Episode, ReportJob.episode_id == Episode.id)
                .join(Report, Report.episode_id == Episode.id)
                .where(ReportJob.status == "done", ReportJob.announced.is_(False))
                .order_by(Report.created_at)
                .limit(100)
            ).all()
            for job, report, episode in rows:
                self.router.publish(topics.report(episode.site, episode.patient_id, SERVICE_ID),
                                    self._report_message(report, episode), qos=1)
                job.announced = True
                session.commit()
                self.counters.inc("announced")
                self.counters.observe("ingest_to_report_ms",
                                      max(0.0, (report.created_at - episode.received_at).total_seconds() * 1000))
                self.counters.observe("report_render_ms", report.rendered_ms)
                log.info("report announced", extra={"trace_id": episode.trace_id, "report_id": report.id,
                                                     "alert_id": episode.id})
            return len(rows)

    def publish_labels(self) -> int:
        """Publish every clinician verdict not yet on the bus, to the device that raised the alert (a training
        label; drills never have one). The label's id is the message id: a re-publish after a crash dedupes."""
        with self.sessions() as session:
            labels = session.scalars(select(Label).where(Label.published_at.is_(None))
                                     .order_by(Label.created_at).limit(100)).all()
            for label in labels:
                message = LabelMessage.model_validate({
                    "id": label.id, "source": SERVICE_ID, "patient_id": label.patient_id, "seq": self._next_seq(),
                    "trace_id": label.alert_id, "drill": False,
                    "payload": {"alert_id": label.alert_id, "report_id": label.report_id, "verdict": label.verdict,
                                "rhythm": label.rhythm, "labelled_at": label.created_at},
                })
                self.router.publish(topics.label(label.site, label.patient_id, label.device_id), message, qos=1)
                label.published_at = self._now()
                session.commit()
                self.counters.inc("labels_published")
                log.info("label published", extra={"trace_id": label.alert_id, "verdict": label.verdict})
            return len(labels)

    def _next_seq(self) -> int:
        self._last_seq = max(self._last_seq + 1, int(time.time() * 1000))
        return self._last_seq

    def _report_message(self, report: Report, episode: Episode) -> ReportMessage:
        hops = [Hop.model_validate(h) for h in episode.hops_json]
        hops.append(Hop(name=REPORT_HOP, source=SERVICE_ID, at=report.created_at))
        seq = self._next_seq()
        # model_validate: Envelope's aliased, defaulted `schema` field reads as required to mypy without the
        # pydantic plugin; validating a dict keeps this module clean under either mypy configuration.
        return ReportMessage.model_validate({
            "id": report.id, "source": SERVICE_ID, "patient_id": episode.patient_id, "seq": seq,
            "trace_id": episode.trace_id, "drill": episode.drill,
            "payload": {"report_id": report.id, "alert_id": episode.id, "level": episode.level,
                        "url": f"/reports/{report.id}", "hops": hops[-64:]},
        })

    def sweep_jobs(self) -> int:
        """Re-enqueue jobs stuck queued/running past `report_sweep_s`, and failed ones with attempts left."""
        now = self._now()
        cutoff = now - timedelta(seconds=self.settings.report_sweep_s)
        with self.sessions() as session:
            rows = session.execute(
                select(ReportJob, Episode.level).join(Episode, ReportJob.episode_id == Episode.id).where(or_(
                    and_(ReportJob.status == "queued", ReportJob.enqueued_at < cutoff),
                    and_(ReportJob.status == "running", ReportJob.started_at < cutoff),
                    ReportJob.status == "failed",
                ), ReportJob.attempts < MAX_ATTEMPTS).limit(100)
            ).all()
            for job, _level in rows:
                job.status, job.attempts, job.enqueued_at = "queued", job.attempts + 1, now
            session.commit()
            ids = [(job.id, job.episode_id, level) for job, level in rows]
        for job_id, alert_id, level in ids:
            self.counters.inc("requeued")
            log.warning("re-enqueueing report job", extra={"job_id": job_id, "alert_id": alert_id})
            self._enqueue(job_id, {"job_id": job_id, "alert_id": alert_id}, level=level)
        return len(ids)
