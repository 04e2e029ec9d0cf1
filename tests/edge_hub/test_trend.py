"""Per-minute heart rate from the 1 Hz vitals (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_hub.trend import GRACE_S, HrRollup

T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)


def test_closed_minutes_are_handed_over_once_with_mean_min_max() -> None:
    rollup = HrRollup()
    for i, hr in enumerate([60.0, 70.0, 80.0]):
        rollup.add("p1", "w1", T0 + timedelta(seconds=10 * i), hr, signal_ok=i != 2)
    rollup.add("p1", "w1", T0 + timedelta(seconds=70), 90.0, signal_ok=True)  # the next minute
    assert not rollup.add("p1", "w1", T0 + timedelta(seconds=20), None, signal_ok=False)  # no rate: not kept
    assert rollup.drain(T0 + timedelta(seconds=60 + GRACE_S - 1)) == {}  # readings may still be in flight
    [minute] = rollup.drain(T0 + timedelta(seconds=60 + GRACE_S))["p1"]
    assert (minute.minute, minute.n, minute.hr_mean, minute.hr_min, minute.hr_max) == (T0, 3, 70.0, 60.0, 80.0)
    assert minute.signal_ok_share == round(2 / 3, 4)
    assert rollup.drain(T0 + timedelta(seconds=60 + GRACE_S)) == {}  # handed over: gone
    [second] = rollup.drain(T0, everything=True)["p1"]  # at shutdown, the open minute too
    assert second.minute == T0 + timedelta(minutes=1) and second.n == 1


def test_a_late_reading_for_a_minute_already_sent_becomes_a_new_part() -> None:
    rollup = HrRollup()
    rollup.add("p1", "w1", T0, 70.0, True)
    assert len(rollup.drain(T0 + timedelta(minutes=5))["p1"]) == 1
    rollup.add("p1", "w1", T0 + timedelta(seconds=30), 74.0, True)  # a watch's outbox draining
    [late] = rollup.drain(T0 + timedelta(minutes=5))["p1"]
    assert late.minute == T0 and late.n == 1


def test_patients_and_devices_stay_apart() -> None:
    rollup = HrRollup()
    rollup.add("p1", "w1", T0, 70.0, True)
    rollup.add("p1", "w2", T0, 90.0, True)
    rollup.add("p2", "w3", T0, 50.0, True)
    out = rollup.drain(T0 + timedelta(minutes=5))
    assert [(m.device_id, m.hr_mean) for m in out["p1"]] == [("w1", 70.0), ("w2", 90.0)]
    assert [m.device_id for m in out["p2"]] == ["w3"]
