"""Report priorities on the real Redis: within the report queue an urgent report is taken before routine ones
queued earlier; emergencies have a queue of their own (and a worker: compose's worker-emergency)."""

from __future__ import annotations

import uuid

import pytest

from cloud_expert.worker.celery_app import make_app
from cloud_expert.worker.enqueue import ROUTINE_PRIORITY, URGENT_PRIORITY, celery_enqueuer
from shared.settings import Settings

pytestmark = pytest.mark.integration


def test_an_urgent_report_overtakes_routine_ones_queued_before_it(redis_url: str) -> None:
    queue = f"reports-prio-{uuid.uuid4().hex[:8]}"
    app = make_app(Settings(celery_broker_url=redis_url), queue=queue)
    routine = celery_enqueuer(app, queue=queue, priority=ROUTINE_PRIORITY)
    urgent = celery_enqueuer(app, queue=queue, priority=URGENT_PRIORITY)
    for i in range(3):
        routine(f"routine-{i}")
    urgent("urgent-0")
    taken = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            for _ in range(4):
                message = simple.get(timeout=5)
                taken.append(message.headers["argsrepr"].strip("[]()',"))
                message.ack()
        finally:
            simple.close()
    assert taken == ["urgent-0", "routine-0", "routine-1", "routine-2"]
