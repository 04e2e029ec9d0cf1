"""Celery tasks: thin, by id, idempotent; the work is in `cloud_expert.reports.jobs`."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from celery.signals import worker_init
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import encryption, make_engine, make_session_factory, upgrade_to_head
from cloud_expert.reports.jobs import TRANSIENT_DB_ERRORS, run_report_job
from cloud_expert.worker.celery_app import app
from cloud_expert.worker.enqueue import RENDER_REPORT
from shared.messages import utcnow
from shared.settings import get_settings

log = logging.getLogger(__name__)



@lru_cache(maxsize=1)
def worker_sessions() -> sessionmaker[Session]:
    """The session factory of this (pool) process, made on first use: never inherited across a fork."""
    encryption.configure(get_settings().data_keys)
    return make_session_factory(make_engine(get_settings().effective_database_url))


@worker_init.connect
def _upgrade_schema(**_kwargs: Any) -> None:
    """Every process brings the schema to head at start; the worker does it before taking tasks."""
    upgrade_to_head(get_settings().effective_database_url)
    log.info("report worker ready", extra={"queue": app.conf.task_default_queue})


@app.task(name=RENDER_REPORT, pydantic=True, autoretry_for=TRANSIENT_DB_ERRORS, retry_backoff=True,
          retry_backoff_max=30, retry_jitter=True, max_retries=5)
def render_report(job_id: str) -> str:
    """Render and store the report of one job (a no-op when it is done already)."""
    return run_report_job(worker_sessions(), job_id, now=utcnow)
