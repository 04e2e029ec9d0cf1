"""Celery configuration, from settings only. Start a worker with

    python -m celery -A cloud_expert.worker.celery_app worker --pool=solo -c 1 -Q reports

Broker: `CARDIOMESH_CELERY_BROKER_URL` (Redis in production and tests), or, when unset, kombu's
filesystem transport under `state_dir/celery`, so a single machine needs no Redis. The queue name is
`CARDIOMESH_CELERY_QUEUE` (default "reports"). No result backend: the report job row is the truth.

With Redis, a task taken by a worker that then dies unacknowledged (SIGKILL, power loss) is redelivered
after the broker's visibility timeout: kombu's default is one hour; `CARDIOMESH_CELERY_VISIBILITY_TIMEOUT_S`
sets it (tests use a few seconds). It must exceed the longest report rendering, or a slow task is handed
to a second worker while the first still runs (harmless: the job is idempotent, but wasted work). The
cloud service's sweeper (`report_sweep_s`) is the other, broker-independent recovery path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import Celery

from shared.settings import Settings, get_settings

DEFAULT_QUEUE = "reports"
QUEUE = os.environ.get("CARDIOMESH_CELERY_QUEUE", DEFAULT_QUEUE)
#: Emergency episodes' reports have a queue of their own (and, in compose, a worker of their own): an emergency
#: never waits behind a backlog of routine reports.
EMERGENCY_QUEUE = os.environ.get("CARDIOMESH_CELERY_EMERGENCY_QUEUE", f"{QUEUE}-emergency")
VISIBILITY_TIMEOUT_ENV = "CARDIOMESH_CELERY_VISIBILITY_TIMEOUT_S"


def filesystem_broker_options(state_dir: Path) -> dict[str, Any]:
    """One folder for producers and consumers on this machine (kombu reads `in`, writes `out`)."""
    root = (state_dir / "celery").resolve()
    messages, processed, control = root / "messages", root / "processed", root / "control"
    for folder in (messages, processed, control):
        folder.mkdir(parents=True, exist_ok=True)
    return {"data_folder_in": str(messages), "data_folder_out": str(messages), "processed_folder": str(processed),
            "control_folder": str(control), "store_processed": False, "polling_interval": 0.2}


def redis_visibility_options(visibility_s: float) -> dict[str, Any]:
    """Visibility timeout plus a restore sweep frequent enough to honour it: kombu scans for expired unacked
    messages only every `unacked_restore_interval × unacked_restore_throttle` s (10 × 10 by default)."""
    return {"visibility_timeout": visibility_s, "unacked_restore_interval": max(1, int(min(10.0, visibility_s / 3))),
            "unacked_restore_throttle": 1}


def make_app(settings: Settings, *, queue: str = QUEUE) -> Celery:
    """The Celery app for `settings`; tests build their own to point at a private queue or folder."""
    app = Celery("cloud_expert", include=["cloud_expert.worker.tasks"])
    if settings.celery_broker_url:
        app.conf.broker_url = settings.celery_broker_url
        visibility = os.environ.get(VISIBILITY_TIMEOUT_ENV)
        if visibility:
            app.conf.broker_transport_options = redis_visibility_options(float(visibility))
    else:
        app.conf.broker_url = "filesystem://localhost//"  # a hostname, or kombu warns "No hostname was supplied"
        app.conf.broker_transport_options = filesystem_broker_options(settings.state_dir)
        app.conf.worker_enable_remote_control = False  # broadcast control needs a shared fanout store
    app.conf.update(
        task_default_queue=queue,
        task_acks_late=True,  # tasks are idempotent by job id: a crashed worker's job is simply redelivered
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app


app = make_app(get_settings())
