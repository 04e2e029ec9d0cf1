"""Acknowledged messages are handled before waiting telemetry; telemetry is shed past its bound, never the rest."""

from __future__ import annotations

import threading

from shared.metrics import Counters
from shared.transport.lanes import Lanes


def test_urgent_first_each_lane_in_order_and_only_telemetry_is_shed() -> None:
    counters = Counters()
    lanes: Lanes[str] = Lanes(counters, max_routine=3)
    for i in range(5):
        lanes.put(f"vitals-{i}", urgent=False)
    lanes.put("alert-1", urgent=True)
    lanes.put("alert-2", urgent=True)
    assert lanes.depth() == (2, 3) and counters.get("shed.telemetry") == 2
    assert [lanes.get() for _ in range(5)] == ["alert-1", "alert-2", "vitals-2", "vitals-3", "vitals-4"]


def test_the_stop_mark_waits_behind_urgent_work_and_wakes_a_waiting_consumer() -> None:
    lanes: Lanes[str] = Lanes()
    got: list[str | None] = []
    consumer = threading.Thread(target=lambda: got.extend(iter(lanes.get, None)))
    consumer.start()
    lanes.put("alert", urgent=True)
    lanes.put(None, urgent=True)
    consumer.join(timeout=5)
    assert got == ["alert"] and not consumer.is_alive()
