"""Scheduled drills: when they are due (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from cardiomesh.schedule import next_due, parse_span, parse_time_of_day

NOW = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def test_daily_at_a_time_of_day_in_the_sites_zone() -> None:
    daily = timedelta(days=1)
    assert next_due(NOW, every=daily, at=time(3, 0)) == datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert next_due(NOW, every=daily, at=time(15, 0)) == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    # 03:00 in Paris is 02:00 UTC in December
    assert next_due(NOW, every=daily, at=time(3, 0), zone="Europe/Paris") == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    assert next_due(NOW, every=timedelta(hours=6), at=time(3, 0)) == datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    assert next_due(NOW, every=timedelta(hours=6), at=time(23, 0)) == datetime(2026, 12, 4, 17, 0, tzinfo=UTC)
    assert next_due(NOW, every=timedelta(minutes=30), at=None) == NOW + timedelta(minutes=30)
    at_the_time = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert next_due(at_the_time, every=daily, at=time(3, 0)) == at_the_time + daily  # strictly after


def test_spans_and_times_refuse_nonsense() -> None:
    assert parse_span("1d") == timedelta(days=1) and parse_span("30m") == timedelta(minutes=30)
    for bad in ("", "10", "1w", "30s"):
        with pytest.raises(ValueError):
            parse_span(bad)
    assert parse_time_of_day("03:00") == time(3, 0)
    for bad in ("3", "24:00", "03:60", "ab:cd"):
        with pytest.raises(ValueError):
            parse_time_of_day(bad)
