"""Emergency first, then urgent, routine, training; a reserve that holds routine work back and never an
emergency; only best-effort routine is shed past its bound, never an acknowledged message."""

from __future__ import annotations

import threading
import time

import pytest

from shared.metrics import Counters
from shared.transport.lanes import Lanes, Priority, priority_of

E, U, R, T = Priority.EMERGENCY, Priority.URGENT, Priority.ROUTINE, Priority.TRAINING


def test_topics_map_to_their_lanes() -> None:
    assert priority_of("cm/v1/s/pt-1/watch-1/alert", 1) == E
    assert priority_of("cm/v1/s/pt-1/watch-1/cmd", 1) == E
    assert priority_of("cm/v1/s/pt-1/phone-1/analysis", 1) == U
    assert priority_of("cm/v1/s/presence/watch-1", 1) == U
    assert priority_of("cm/v1/s/pt-1/watch-1/vitals", 0) == R
    assert priority_of("cm/v1/s/capabilities/watch-1", 1) == R
    assert priority_of("cm/v1/fl/watch-detector/update/s/watch-1", 1) == T
    assert priority_of("cm/v1/fl/watch-detector/model", 1) == T
    assert priority_of("something/else", 1) == U and priority_of("something/else", 0) == R


def test_higher_lanes_first_each_lane_in_order() -> None:
    lanes: Lanes[str] = Lanes(reserve=0.0)
    for name, p in (("fl-1", T), ("vitals-1", R), ("analysis-1", U), ("alert-1", E), ("vitals-2", R),
                    ("alert-2", E)):
        lanes.put(name, p)
    assert [lanes.get() for _ in range(6)] == ["alert-1", "alert-2", "analysis-1", "vitals-1", "vitals-2", "fl-1"]


def test_only_best_effort_messages_are_shed_and_each_is_counted() -> None:
    counters = Counters()
    lanes: Lanes[str] = Lanes(counters, reserve=0.0, max_queued={R: 3})
    lanes.put("ack-0", R)  # an acknowledged routine message (QoS 1): never shed
    for i in range(5):
        lanes.put(f"vitals-{i}", R, sheddable=True)
    assert counters.get("shed.routine") == 3
    assert lanes.depth()["routine"] == 3
    assert [lanes.get() for _ in range(3)] == ["ack-0", "vitals-3", "vitals-4"]
    for i in range(5):  # a lane of acknowledged messages grows past its bound rather than lose one
        lanes.put(f"ack-{i}", R)
    assert lanes.depth()["routine"] == 5 and counters.get("backpressure.routine") == 2
    for i in range(10):  # emergencies have no bound
        lanes.put(f"alert-{i}", E, sheddable=True)
    assert lanes.depth()["emergency"] == 10


def test_the_reserve_holds_routine_work_back_but_never_an_emergency() -> None:
    counters = Counters()
    lanes: Lanes[str] = Lanes(counters, reserve=0.5, window_s=0.2)  # 0.1 s of routine work per 0.2 s
    for i in range(20):
        lanes.put(f"vitals-{i}", R)
    assert lanes.get() == "vitals-0"
    time.sleep(0.25)  # "handling" vitals-0 overdraws the bucket (0.25 s against 0.1 s)
    lanes.put("alert", E)
    started = time.monotonic()
    assert lanes.get() == "alert"  # at once, though routine work is over budget
    assert time.monotonic() - started < 0.05
    assert lanes.get() == "vitals-1"  # after the bucket refilled: ≈ 0.15 s / 0.5
    assert time.monotonic() - started >= 0.2
    assert counters.get("reserve.held") >= 1


def test_the_stop_mark_waits_behind_emergency_and_urgent_work_and_wakes_a_waiting_consumer() -> None:
    lanes: Lanes[str] = Lanes()
    got: list[str | None] = []
    consumer = threading.Thread(target=lambda: got.extend(iter(lanes.get, None)))
    consumer.start()
    lanes.put("alert", E)
    lanes.put(None)
    consumer.join(timeout=5)
    assert got == ["alert"] and not consumer.is_alive()


def test_a_reserve_of_all_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="reserve"):
        Lanes(reserve=1.0)
