"""Schemathesis against the dashboard's OpenAPI: whatever a client sends, never a 5xx.

Every operation of `/openapi.json`, with generated paths, queries and bodies, on a seeded database: the
API answers each with a 2xx, a 4xx that says why, or a redirect; a 500 is a bug.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans

from tests.cloud_expert.web.conftest import Seeded

pytestmark = pytest.mark.slow


def test_no_operation_answers_with_a_server_error(client: TestClient, seeded: Seeded) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 5
    try:
        for operation in operations:

            @given(operation.as_strategy())
            @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            run()
    finally:
        # schemathesis starts the app's lifespan on its own event-loop thread and keeps it for the process; the
        # app's background work stops here, the (idle) loop thread at interpreter exit (schemathesis' atexit)
        shutdown_lifespans()
