"""Handing a job id to Celery. Callers enqueue only after their DB commit, so the worker finds the row."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

RENDER_REPORT = "cloud_expert.render_report"


def celery_enqueuer(app: Celery, *, queue: str) -> Callable[[str], None]:
    """`enqueue(job_id)` sending the render task by name (no import of the task module needed)."""

    def enqueue(job_id: str) -> None:
        app.send_task(RENDER_REPORT, args=[job_id], queue=queue)

    return enqueue


def default_enqueuer() -> Callable[[str], None]:
    """The enqueue of the configured app and queue (`CARDIOMESH_CELERY_BROKER_URL`, `CARDIOMESH_CELERY_QUEUE`)."""
    from cloud_expert.worker.celery_app import QUEUE, app

    return celery_enqueuer(app, queue=QUEUE)


def default_emergency_enqueuer() -> Callable[[str], None]:
    """The enqueue for emergency episodes' reports (`CARDIOMESH_CELERY_EMERGENCY_QUEUE`)."""
    from cloud_expert.worker.celery_app import EMERGENCY_QUEUE, app

    return celery_enqueuer(app, queue=EMERGENCY_QUEUE)
