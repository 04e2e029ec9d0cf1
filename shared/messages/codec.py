"""Bytes ⇄ typed messages. The one place a bus payload is parsed, so every rejection is alike."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationError

from shared.messages.clinical import (
    AlertMessage,
    AnalysisMessage,
    EscalationMessage,
    LabelMessage,
    ReportMessage,
    TriageMessage,
)
from shared.messages.device import CapabilitiesMessage, CommandMessage, PresenceMessage, StripMessage, VitalsMessage
from shared.messages.edge import DisclosureMessage, SummaryMessage
from shared.messages.envelope import Envelope
from shared.messages.fl import AggregateMessage, ModelDeltaMessage, ModelMessage, RoundMessage, UpdateMessage

Message = Annotated[
    AlertMessage | AnalysisMessage | TriageMessage | EscalationMessage | ReportMessage | VitalsMessage
    | PresenceMessage | CapabilitiesMessage | CommandMessage | StripMessage | RoundMessage | ModelMessage
    | UpdateMessage | AggregateMessage | LabelMessage | DisclosureMessage | SummaryMessage | ModelDeltaMessage,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Envelope] = TypeAdapter(Message)

RejectReason = Literal[
    "oversized", "not_json", "unknown_type", "invalid", "wrong_type", "wrong_topic", "handler_error",
    "from_future", "stale", "replayed",
]


class DecodeError(ValueError):
    """A payload that is not a valid CardioMesh message; `reason` is the counter it is filed under."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


def encode(message: Envelope) -> bytes:
    return message.model_dump_json(by_alias=True).encode("utf-8")


def decode(raw: bytes, *, max_bytes: int) -> Envelope:
    return validate_object(load_object(raw, max_bytes=max_bytes))


def load_object(raw: bytes, *, max_bytes: int) -> dict[str, Any]:
    """The cheap half of `decode`: size, JSON, an object with a known `type`. Lets a caller refuse a message
    on its envelope (e.g. a spoofed source) before paying for schema validation."""
    if len(raw) > max_bytes:
        raise DecodeError("oversized", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("not_json", str(exc)[:200]) from None
    except RecursionError:  # [[[[… nested deeper than the parser's stack
        raise DecodeError("not_json", "nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise DecodeError("not_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise DecodeError("invalid", "top level is not an object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:  # a list or dict here is unhashable, not just unknown
        raise DecodeError("unknown_type", f"type={str(kind)[:40]!r}")
    return data


def validate_object(data: dict[str, Any]) -> Envelope:
    """The schema half of `decode`."""
    try:
        return _ADAPTER.validate_python(data)
    except RecursionError:
        raise DecodeError("invalid", "nested too deeply") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise DecodeError("invalid", f"{where}: {first.get('msg')} ({exc.error_count()} errors)") from None


#: every message type the union above knows (derived, so a new message cannot be left out)
_TYPES = {model.model_fields["type"].default for model in get_args(get_args(Message)[0])}
