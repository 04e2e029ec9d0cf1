"""When scheduled drills are due: every `every` from a first time of day in the site's time zone (e.g. daily at
03:00), or from now. Pure; `cardiomesh drill schedule` loops on it."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

_SPAN = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_span(text: str) -> timedelta:
    """`30m`, `6h`, `1d` → a timedelta of at least one minute; ValueError otherwise."""
    found = _SPAN.match(text.strip().lower())
    if not found:
        raise ValueError(f"not a span like 30m, 6h or 1d: {text!r}")
    span = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if span < timedelta(minutes=1):
        raise ValueError("drills are scheduled at most once a minute")
    return span


def parse_time_of_day(text: str) -> time:
    hours, _, minutes = text.strip().partition(":")
    if not (hours.isdigit() and minutes.isdigit()) or not (0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ValueError(f"not a time of day like 03:00: {text!r}")
    return time(int(hours), int(minutes))


def next_due(now: datetime, *, every: timedelta, at: time | None, zone: str = "UTC") -> datetime:
    """The first due time strictly after `now` (aware). With `at`: the grid `at` + k·every anchored at today's
    `at` in `zone`; without: `now` + every."""
    if at is None:
        return now + every
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    anchor = datetime.combine(local.date(), at, tzinfo=tz)
    if anchor > local:
        anchor -= every * ((anchor - local) // every + 1)  # step back until at or before now
    steps = (local - anchor) // every + 1
    return (anchor + every * steps).astimezone(now.tzinfo)
