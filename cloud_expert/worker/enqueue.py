"""Handing a job id to Celery. Callers enqueue only after their DB commit, so the worker finds the row."""

from __future__ import annotations

from collections.abc import Callable

from celery import Celery

RENDER_REPORT = "cloud_expert.render_report"
#: Within a queue (Redis: 0 is served first; kombu's steps 0, 3, 6, 9): urgent reports before routine ones.
#: Emergencies do not share it at all (their own queue and worker); training/sync never go through Celery.
URGENT_PRIORITY = 0
ROUTINE_PRIORITY = 6


def celery_enqueuer(app: Celery, *, queue: str, priority: int | None = None) -> Callable[[str], None]:
    """`enqueue(job_id)` sending the render task by name (no import of the task module needed)."""

    def enqueue(job_id: str) -> None:
        app.send_task(RENDER_REPORT, args=[job_id], queue=queue, priority=priority)

    return enqueue


def default_enqueuer() -> Callable[[str], None]:
    """The enqueue of the configured app and queue (`CARDIOMESH_CELERY_BROKER_URL`, `CARDIOMESH_CELERY_QUEUE`)."""
    from cloud_expert.worker.celery_app import QUEUE, app

    return celery_enqueuer(app, queue=QUEUE, priority=URGENT_PRIORITY)


def default_routine_enqueuer() -> Callable[[str], None]:
    """The enqueue for routine (info-level) reports: the same queue, served after every urgent one waiting."""
    from cloud_expert.worker.celery_app import QUEUE, app

    return celery_enqueuer(app, queue=QUEUE, priority=ROUTINE_PRIORITY)


def default_emergency_enqueuer() -> Callable[[str], None]:
    """The enqueue for emergency episodes' reports (`CARDIOMESH_CELERY_EMERGENCY_QUEUE`)."""
    from cloud_expert.worker.celery_app import EMERGENCY_QUEUE, app

    return celery_enqueuer(app, queue=EMERGENCY_QUEUE)
