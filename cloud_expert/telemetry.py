"""What edges send the cloud besides escalations (shared.messages.edge): the after-part of alert strips (full
disclosure) and per-patient summaries (devices, per-minute heart rate). Stored idempotently — a redelivered
message adds nothing — and read back for the strip viewer and the patient view.

Drills never reach the trend (an edge never puts a drill in a summary; a drill-marked summary is refused), and
a drill's disclosure stays a drill's.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_expert.db import DeviceRow, HrMinuteRow, StripSegment
from cloud_expert.db.upsert import insert_ignoring_conflicts, upsert
from shared.messages import DisclosureMessage, SummaryMessage

log = logging.getLogger(__name__)


def store_disclosure(session: Session, site: str, msg: DisclosureMessage, now: datetime) -> int:
    """Keep each segment of a disclosure; the number new (0 for a redelivery). The caller commits."""
    p = msg.payload
    new = 0
    for segment in p.segments:
        new += insert_ignoring_conflicts(session, StripSegment, {
            "alert_id": p.alert_id, "t0_s": round(segment.t0_s, 4), "site": site,
            "patient_id": msg.patient_id or "unknown", "device_id": p.device_id, "drill": msg.drill,
            "fs": segment.fs, "gain": segment.gain, "lead": segment.lead,
            "samples": base64.b64decode(segment.samples_b64), "complete": p.complete, "received_at": now,
        })
    log.info("full disclosure stored", extra={"trace_id": msg.trace_id, "alert_id": p.alert_id, "new_segments": new,
                                              "complete": p.complete, "drill": msg.drill})
    return new


def store_summary(session: Session, site: str, msg: SummaryMessage, now: datetime) -> int:
    """Devices (their latest state) and heart-rate minutes (one part per message); the minutes new. A drill
    summary is refused with ValueError: the trend is clinical data. The caller commits."""
    if msg.drill:
        raise ValueError("a drill never enters a patient's trend")
    patient_id = msg.patient_id or "unknown"
    for device in msg.payload.devices:
        upsert(session, DeviceRow, {"device_id": device.device_id, "patient_id": patient_id, "site": site,
                                    "role": device.role, "status": device.status, "last_seen": device.last_seen,
                                    "reported_at": now})
    new = 0
    for m in msg.payload.minutes:
        new += insert_ignoring_conflicts(session, HrMinuteRow, {
            "device_id": m.device_id, "minute": m.minute, "message_id": msg.id, "site": site,
            "patient_id": patient_id, "n": m.n, "hr_mean": m.hr_mean, "hr_min": m.hr_min, "hr_max": m.hr_max,
            "signal_ok_share": m.signal_ok_share})
    return new


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """A patient's heart rate over one bucket, every device and part combined (weighted by readings)."""

    start: datetime
    n: int
    hr_mean: float
    hr_min: float
    hr_max: float


def hr_trend(session: Session, patient_id: str, *, since: datetime, until: datetime,
             bucket: timedelta = timedelta(minutes=1)) -> list[TrendPoint]:
    rows = session.execute(select(HrMinuteRow.minute, HrMinuteRow.n, HrMinuteRow.hr_mean, HrMinuteRow.hr_min,
                                  HrMinuteRow.hr_max)
                           .where(HrMinuteRow.patient_id == patient_id, HrMinuteRow.minute >= since,
                                  HrMinuteRow.minute < until)).all()
    width = bucket.total_seconds()
    acc: dict[int, list[float]] = {}
    for minute, n, mean, lo, hi in rows:
        key = int((minute - since).total_seconds() // width)
        a = acc.setdefault(key, [0, 0.0, float("inf"), float("-inf")])
        a[0] += n
        a[1] += n * mean
        a[2], a[3] = min(a[2], lo), max(a[3], hi)
    return [TrendPoint(since + timedelta(seconds=key * width), int(a[0]), round(a[1] / a[0], 1), a[2], a[3])
            for key, a in sorted(acc.items())]


def devices_of(session: Session, patient_id: str) -> list[DeviceRow]:
    return list(session.scalars(select(DeviceRow).where(DeviceRow.patient_id == patient_id)
                                .order_by(DeviceRow.device_id)))


@dataclass(frozen=True, slots=True)
class Segment:
    t0_s: float
    fs: float
    samples_mv: np.ndarray
    complete: bool


def disclosure(session: Session, alert_id: str) -> list[Segment]:
    """The after-part of an episode's strip, in stream order (empty until its edge has sent it)."""
    rows = session.scalars(select(StripSegment).where(StripSegment.alert_id == alert_id)
                           .order_by(StripSegment.t0_s)).all()
    return [Segment(row.t0_s, row.fs, np.frombuffer(row.samples, dtype="<i2").astype(np.float64) / row.gain,
                    row.complete) for row in rows]
