"""Every router a test here starts a retry thread in is closed when the test ends: the idle thread would
otherwise outlive it (11 of them did, across tests/shared)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from shared.transport.router import Router


@pytest.fixture(autouse=True)
def _close_routers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[Router] = []
    ensure = Router._ensure_retrier

    def tracked(self: Router, *args: Any, **kwargs: Any) -> None:
        started.append(self)
        ensure(self, *args, **kwargs)

    monkeypatch.setattr(Router, "_ensure_retrier", tracked)
    yield
    for router in started:
        router.close()
