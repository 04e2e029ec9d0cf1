"""A failed handler's message is kept, retried, parked for an operator: never acknowledged into the void."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared import topics
from shared.messages import AlertMessage, encode
from shared.metrics import Counters
from shared.transport import DeadLetterStore, InMemoryBus, Router
from shared.transport.dead_letters import PARKED, WAITING, DeadLetter, backoff_s
from tests import factories
from tests.waiting import wait_until

TOPIC = topics.alert("s", "pt-1", "watch-1")


class Flaky:
    """A handler that fails its first `failures` calls (a database failover), then works."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.handled: list[str] = []

    def __call__(self, _parts: topics.TopicParts, message: AlertMessage) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("database unavailable")
        self.handled.append(message.id)


def _setup(store: DeadLetterStore, handler: Flaky) -> tuple[InMemoryBus, Router, Counters]:
    bus = InMemoryBus()
    counters = Counters()
    router = Router(bus.transport("t"), counters=counters, max_bytes=1 << 20, dead_letters=store,
                    background_retry=False)
    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, handler)
    return bus, router, counters


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(30) == 60.0


def test_a_failed_message_is_kept_and_handled_once_it_can_be(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.db")
    handler = Flaky(failures=2)
    bus, router, counters = _setup(store, handler)
    alert = factories.alert(device="watch-1", patient="pt-1")
    bus.transport("w").publish(TOPIC, encode(alert))
    assert handler.handled == [] and counters.get("dead_letters.kept") == 1
    [letter] = store.all()
    assert letter.state == WAITING and "database unavailable" in letter.error and letter.next_try > time.time()
    assert router.retry_due() == 0 and handler.calls == 1  # not due yet: backoff
    assert router.retry_due(now=time.time() + 1.5) == 0  # the second failure: waits longer
    assert store.all()[0].attempts == 2 and store.all()[0].next_try > time.time() + 1.5
    assert router.retry_due(now=time.time() + 3) == 1
    assert handler.handled == [alert.id] and store.all() == []
    assert counters.get("dead_letters.recovered") == 1 and counters.get("rejected.handler_error") == 1


def test_a_message_that_keeps_failing_is_parked_for_an_operator(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.db", max_attempts=3)
    handler = Flaky(failures=10)
    bus, router, counters = _setup(store, handler)
    bus.transport("w").publish(TOPIC, encode(factories.alert(device="watch-1", patient="pt-1")))
    for _ in range(2):
        router.retry_due(now=time.time() + 3600)
    [letter] = store.all()
    assert letter.state == PARKED and counters.get("dead_letters.parked") == 1
    assert store.counts() == {WAITING: 0, PARKED: 1}
    handler.failures = 0
    assert router.retry_due(now=time.time() + 3600) == 0  # parked: not retried by itself
    assert store.release() == 1 and router.retry_due() == 1 and store.all() == []


def test_rows_a_previous_run_left_are_retried_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "dl.db"
    store = DeadLetterStore(path)
    bus, router, _ = _setup(store, Flaky(failures=1))
    alert = factories.alert(device="watch-1", patient="pt-1")
    bus.transport("w").publish(TOPIC, encode(alert))
    router.close()
    store.close()  # the process dies with the row waiting

    again = DeadLetterStore(path)
    handler = Flaky(failures=0)
    _, router2, counters = _setup(again, handler)
    assert router2.retry_due(now=time.time() + 2) == 1 and handler.handled == [alert.id]
    assert counters.get("dead_letters.recovered") == 1


def test_the_background_retrier_handles_a_kept_message(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dl.db")
    handler = Flaky(failures=1)
    bus = InMemoryBus()
    router = Router(bus.transport("t"), counters=Counters(), max_bytes=1 << 20, dead_letters=store)
    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, handler)
    try:
        bus.transport("w").publish(TOPIC, encode(factories.alert(device="watch-1", patient="pt-1")))
        # first retry after backoff_s(1) = 1 s; the row goes once the handler has returned
        assert wait_until(lambda: store.all() == [], 10)
        assert len(handler.handled) == 1
    finally:
        router.close()


def test_a_broken_store_is_counted_as_a_loss_not_silence() -> None:
    store = DeadLetterStore(":memory:")
    store.close()
    bus, _router, counters = _setup(store, Flaky(failures=1))
    bus.transport("w").publish(TOPIC, encode(factories.alert(device="watch-1", patient="pt-1")))
    assert counters.get("dead_letters.lost") == 1


@pytest.mark.parametrize("attempts", [1, 5])
def test_a_row_added_at_the_budget_is_parked_at_once(tmp_path: Path, attempts: int) -> None:
    store = DeadLetterStore(tmp_path / "dl.db", max_attempts=5)
    store.add("t", b"x", "boom", attempts=attempts)
    assert store.all()[0].state == (PARKED if attempts >= 5 else WAITING)


class CountingStore(DeadLetterStore):
    """An in-memory store that counts how often the retrier looks into it."""

    looks = 0

    def due(self, now: float | None = None) -> list[DeadLetter]:
        self.looks += 1
        return super().due(now)


def test_a_store_in_memory_is_retried_when_due_and_not_polled_while_empty() -> None:
    store = CountingStore(":memory:")
    handler = Flaky(failures=1)
    bus = InMemoryBus()
    router = Router(bus.transport("t"), counters=Counters(), max_bytes=1 << 20, dead_letters=store)
    router.on(topics.alert("s", topics.ANY, topics.ANY), AlertMessage, handler)
    try:
        time.sleep(1.5)  # nothing kept: the retrier sleeps (a durable store is looked at every 0.5 s)
        assert store.looks <= 1
        bus.transport("w").publish(TOPIC, encode(factories.alert(device="watch-1", patient="pt-1")))
        assert wait_until(lambda: store.all() == [], 10)  # woken by the kept message, retried once due (1 s)
        assert len(handler.handled) == 1 and store.looks <= 4
    finally:
        router.close()
