"""The Envelope every bus message travels in, and the ECG strip encoding.

Versioned by `schema` (the JSON key; `schema_version` in Python). A consumer accepts the versions it
knows and rejects the rest, so producers and consumers can be upgraded one at a time.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """Fields common to every message. Subclasses fix `type` and give `payload` its model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    id: Id = Field(default_factory=new_id, description="Unique message id; consumers dedupe on it")
    type: str
    schema_version: int = Field(SCHEMA_VERSION, alias="schema", ge=1, le=SCHEMA_VERSION)
    source: Id = Field(description="Device or service that produced the message")
    patient_id: Id | None = Field(None, description="Pseudonymous patient id; never a name or MRN")
    seq: int = Field(0, ge=0, description="Per-source monotonic sequence number")
    created_at: datetime = Field(default_factory=utcnow)
    trace_id: Id = Field(default_factory=new_id, description="One id across every hop of an episode")
    drill: bool = Field(False, description="True for anomaly drills: never clinical data or labels")

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a timezone")
        return value


class EcgStrip(BaseModel):
    """A single-lead ECG excerpt: int16 samples (base64, little-endian) + gain + sampling rate.

    Floats in JSON would triple the size of a strip and lose nothing we need: 1 µV steps over
    ±32 mV cover any surface ECG.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fs: float = Field(gt=0, le=10_000, description="Sampling rate, Hz")
    gain: float = Field(gt=0, description="ADC units per mV")
    samples_b64: str = Field(max_length=1_000_000)
    lead: str = Field("MLII", max_length=16)
    t0_s: float = Field(0.0, description="Stream time of the first sample, seconds")
    event_s: float = Field(0.0, ge=0, description="Offset of the event inside the strip, seconds")

    @field_validator("samples_b64")
    @classmethod
    def _decodable(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError("samples_b64 is not base64") from exc
        if len(raw) % 2:
            raise ValueError("samples_b64 must hold whole int16 samples")
        return value

    @classmethod
    def from_mv(
        cls, signal_mv: np.ndarray, *, fs: float, gain: float = 1000.0, lead: str = "MLII",
        t0_s: float = 0.0, event_s: float = 0.0,
    ) -> EcgStrip:
        digital = np.clip(np.round(np.asarray(signal_mv, dtype=np.float64) * gain), -32768, 32767)
        raw = digital.astype("<i2").tobytes()
        return cls(fs=fs, gain=gain, samples_b64=base64.b64encode(raw).decode("ascii"), lead=lead,
                   t0_s=t0_s, event_s=event_s)

    def to_mv(self) -> np.ndarray:
        raw = base64.b64decode(self.samples_b64)
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / self.gain

    @property
    def n_samples(self) -> int:
        return len(base64.b64decode(self.samples_b64)) // 2

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs
