"""What an edge hub tells the cloud besides escalations: the streamed after-part of an alert's strip (full
disclosure) and a periodic summary of each patient's devices and heart rate (the patient view's trend).

The 1 Hz vitals stay at the edge; the cloud gets per-minute aggregates, so a site's telemetry costs the
cloud one message per patient per summary interval, not one per watch per second.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.messages.device import Role
from shared.messages.envelope import EcgStrip, Envelope, Id


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DisclosurePayload(_Payload):
    """The ECG the watch streamed after its alert (rapid response `stream_strip`), joined into contiguous
    segments; a gap between segments is signal that never reached the edge (live chunks are QoS 0)."""

    alert_id: Id = Field(description="The episode the segments follow (its alert id)")
    device_id: Id
    segments: list[EcgStrip] = Field(min_length=1, max_length=64)
    complete: bool = Field(description="False when the stream ended early or chunks were missing")
    expected_s: float = Field(ge=0, le=600, description="Seconds the edge asked the watch to stream")


class DisclosureMessage(Envelope):
    type: Literal["disclosure"] = "disclosure"
    payload: DisclosurePayload


class HrMinute(_Payload):
    """One device's heart rate over one minute of wall time (UTC), from the vitals with a rate."""

    device_id: Id
    minute: datetime = Field(description="Start of the minute, UTC")
    n: int = Field(ge=1, le=10_000, description="Vitals readings with a rate in the minute")
    hr_mean: float = Field(ge=0, le=400)
    hr_min: float = Field(ge=0, le=400)
    hr_max: float = Field(ge=0, le=400)
    signal_ok_share: float = Field(ge=0, le=1, description="Share of readings the watch judged clean")

    @model_validator(mode="after")
    def _ordered(self) -> HrMinute:
        if not self.hr_min <= self.hr_mean <= self.hr_max:
            raise ValueError("hr_min ≤ hr_mean ≤ hr_max")
        if self.minute.tzinfo is None or self.minute.second or self.minute.microsecond:
            raise ValueError("minute must be an aware datetime on a whole minute")
        return self


class DeviceState(_Payload):
    device_id: Id
    role: Role | None = None
    status: Literal["online", "offline", "unknown"]
    last_seen: datetime | None = Field(None, description="Last message the edge had from the device")


class SummaryPayload(_Payload):
    """A patient's devices and the minutes of heart rate since the previous summary (clinical only)."""

    devices: list[DeviceState] = Field(default_factory=list, max_length=64)
    minutes: list[HrMinute] = Field(default_factory=list, max_length=2_000)


class SummaryMessage(Envelope):
    type: Literal["summary"] = "summary"
    payload: SummaryPayload
