"""Realistic escalations for cloud tests: a synthetic VT-like ECG strip, alert, analysis, triage, hops."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np

from cloud_expert.reports.render import ReportInput
from shared.messages import (
    AlertMessage,
    AlertPayload,
    AnalysisMessage,
    AnalysisPayload,
    EcgStrip,
    EscalationMessage,
    EscalationPayload,
    Hop,
    TriageLevel,
    TriagePayload,
    new_id,
    utcnow,
)

FS = 360.0


def synthetic_ecg(*, seconds: float = 10.0, hr_bpm: float = 180.0, fs: float = FS, seed: int = 7) -> np.ndarray:
    """Gaussian QRS complexes plus T waves and a little noise, in mV (seeded, so tests are repeatable)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * fs)) / fs
    signal = 0.02 * rng.standard_normal(len(t))
    for beat in np.arange(0.2, seconds, 60.0 / hr_bpm):
        signal += 1.4 * np.exp(-(((t - beat) / 0.018) ** 2))
        signal += 0.3 * np.exp(-(((t - beat - 0.16) / 0.04) ** 2))
    return signal


def make_escalation(
    *, site: str, patient_id: str, edge_id: str = "edge-1", device_id: str = "watch-1",
    alert_id: str | None = None, drill: bool = False, level: str = "emergency",
    with_analysis: bool = True, created_at: datetime | None = None, analysis_fields: Mapping[str, Any] | None = None,
    strip_seconds: float = 10.0, hr_bpm: float = 180.0,
) -> EscalationMessage:
    """`analysis_fields` overrides phone-payload fields (e.g. the optional clinical-depth ones: qtc_fridericia_ms)."""
    triage_level = cast(TriageLevel, level)
    created = created_at or utcnow()
    trace_id = new_id()
    alert_id = alert_id or new_id()
    strip = EcgStrip.from_mv(synthetic_ecg(seconds=strip_seconds, hr_bpm=hr_bpm), fs=FS, t0_s=120.0,
                             event_s=min(5.0, strip_seconds / 2))
    alert = AlertMessage(
        source=device_id, patient_id=patient_id, trace_id=trace_id, drill=drill, created_at=created,
        payload=AlertPayload(alert_id=alert_id, kind="tachycardia", detector="rate-v1", hr_bpm=182.0,
                             onset_s=123.0, detected_s=125.0, evidence={"hr_bpm": 182.0, "qrs_ms": 95.0},
                             strip=strip),
    )
    analysis = AnalysisMessage(
        source="phone-1", patient_id=patient_id, trace_id=trace_id, drill=drill,
        created_at=created + timedelta(milliseconds=40),
        payload=AnalysisPayload(**{
            "alert_id": alert_id, "method": "nk-0.2", "quality": "good", "quality_score": 0.93,
            "rhythm": "sinus_tachycardia", "n_beats": 30, "hr_bpm": 180.0, "hr_min_bpm": 176.0, "hr_max_bpm": 184.0,
            "rr_mean_ms": 333.0, "sdnn_ms": 8.0, "rmssd_ms": 5.0, "pnn50": 0.0, "rr_irregularity": 0.02,
            "duration_s": strip_seconds, "analysis_ms": 12.5, **dict(analysis_fields or {}),
        }),
    ) if with_analysis else None
    triage = TriagePayload(alert_id=alert_id, level=triage_level, stage="final",
                           reasons=["HR 182 bpm > 150", "phone confirms tachycardia"],
                           responses=["notify_wearer"], analysis_received=with_analysis)
    hops = [Hop(name="watch_alert", source=device_id, at=created),
            Hop(name="phone_analysis", source="phone-1", at=created + timedelta(milliseconds=40)),
            Hop(name="edge_escalation", source=edge_id, at=created + timedelta(milliseconds=55))]
    return EscalationMessage(
        source=edge_id, patient_id=patient_id, trace_id=trace_id, drill=drill,
        created_at=created + timedelta(milliseconds=55),
        payload=EscalationPayload(alert_id=alert_id, site=site, level=triage_level,
                                  reasons=triage.reasons, alert=alert, analysis=analysis, triage=triage, hops=hops),
    )


def report_input(**kwargs: object) -> ReportInput:
    """A ReportInput as the worker builds it: an escalation plus the cloud's ingest hop."""
    msg = make_escalation(site="home-7", patient_id="p-abc", **kwargs)  # type: ignore[arg-type]
    p = msg.payload
    hops = [*p.hops, Hop(name="cloud_ingest", source="cloud", at=p.alert.created_at + timedelta(milliseconds=80))]
    return ReportInput(report_id="r-1", site=p.site, patient_id="p-abc", level=p.level, drill=msg.drill,
                       trace_id=msg.trace_id, alert=p.alert, analysis=p.analysis, triage=p.triage, hops=hops,
                       created_at=p.alert.created_at)
