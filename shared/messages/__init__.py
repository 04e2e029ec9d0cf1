"""Typed, versioned bus messages (pydantic v2). See docs/messages.md."""

from shared.messages.clinical import (
    ALERT_KINDS,
    TRIAGE_ORDER,
    AlertKind,
    AlertMessage,
    AlertPayload,
    AnalysisMessage,
    AnalysisPayload,
    EscalationMessage,
    EscalationPayload,
    Hop,
    ReportMessage,
    ReportPayload,
    Rhythm,
    TriageLevel,
    TriageMessage,
    TriagePayload,
)
from shared.messages.codec import DecodeError, Message, RejectReason, decode, encode
from shared.messages.device import (
    CommandMessage,
    CommandName,
    CommandPayload,
    DrillScenario,
    PresenceMessage,
    PresencePayload,
    StripMessage,
    StripPayload,
    VitalsMessage,
    VitalsPayload,
)
from shared.messages.envelope import SCHEMA_VERSION, EcgStrip, Envelope, new_id, utcnow

__all__ = [
    "ALERT_KINDS", "SCHEMA_VERSION", "TRIAGE_ORDER", "AlertKind", "AlertMessage", "AlertPayload",
    "AnalysisMessage", "AnalysisPayload", "CommandMessage", "CommandName", "CommandPayload",
    "DecodeError", "DrillScenario", "EcgStrip", "Envelope", "EscalationMessage", "EscalationPayload",
    "Hop", "Message", "PresenceMessage", "PresencePayload", "RejectReason", "ReportMessage",
    "ReportPayload", "Rhythm", "StripMessage", "StripPayload", "TriageLevel", "TriageMessage", "TriagePayload",
    "VitalsMessage", "VitalsPayload", "decode", "encode", "new_id", "utcnow",
]
