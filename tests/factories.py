"""Builders for realistic test messages (one place, so every test speaks the same schema)."""

from __future__ import annotations

import itertools
from typing import Any

import neurokit2 as nk
import numpy as np

from shared.messages import (
    AlertKind,
    AlertMessage,
    AlertPayload,
    AnalysisMessage,
    AnalysisPayload,
    EcgStrip,
    Rhythm,
    new_id,
)

FS = 250.0


#: one sequence for every factory message: a reused seq under a new id would read as a replay
_SEQ = itertools.count(1).__next__

def ecg_strip(seconds: float = 12.0, heart_rate: int = 80, seed: int = 1) -> EcgStrip:
    signal = nk.ecg_simulate(duration=int(seconds), sampling_rate=int(FS), heart_rate=heart_rate, random_state=seed)
    return EcgStrip.from_mv(np.asarray(signal), fs=FS, event_s=seconds / 2)


def alert(*, kind: AlertKind = "wide_complex_run", device: str = "watch-1", patient: str = "pt-abc",
          hr: float = 170.0, drill: bool = False, trace_id: str | None = None, strip: EcgStrip | None = None,
          evidence: dict[str, float] | None = None) -> AlertMessage:
    alert_id, seq = new_id(), _SEQ()
    onset = 60.0 * seq  # each alert its own clinical event: the hub keys episodes by (device, kind, onset)
    return AlertMessage(source=device, patient_id=patient, seq=seq, drill=drill, trace_id=trace_id or alert_id,
                        payload=AlertPayload(alert_id=alert_id, kind=kind, detector="baseline-test", hr_bpm=hr,
                                             onset_s=onset, detected_s=onset + 5.0, evidence=evidence or {},
                                             strip=strip or ecg_strip()))


def analysis(for_alert: AlertMessage, *, device: str = "phone-1", rhythm: Rhythm = "sinus_tachycardia",
             quality: str = "good", irregular: bool = False, hr: float = 120.0,
             max_rr_s: float = 0.6, vt_run_beats: int | None = None,
             events: list[dict[str, Any]] | None = None,
             candidates: list[dict[str, Any]] | None = None) -> AnalysisMessage:
    return AnalysisMessage(
        source=device, patient_id=for_alert.patient_id, seq=_SEQ(), drill=for_alert.drill, trace_id=for_alert.trace_id,
        payload=AnalysisPayload(alert_id=for_alert.payload.alert_id, method="test", quality=quality,
                                quality_score=0.9 if quality == "good" else 0.1, rhythm=rhythm, n_beats=20,
                                hr_bpm=hr, irregular=irregular, max_rr_s=max_rr_s, duration_s=12.0, analysis_ms=30.0,
                                vt_run_beats=vt_run_beats, events=events or [], candidates=candidates or []),
    )
