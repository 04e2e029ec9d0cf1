"""Typed dispatch on top of a Transport: decode → check → call the handler, counting every rejection.

Each component registers `(pattern, MessageType, handler)` triples. Anything that is oversized, not
JSON, of an unknown or unexpected type, invalid against its schema, or claims a source/patient other
than the topic it arrived on is rejected, counted under `rejected.<reason>` and logged, and the
component carries on. A handler that raises is counted as `rejected.handler_error`, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from shared import topics
from shared.messages import DecodeError, Envelope, decode, encode
from shared.metrics import Counters
from shared.transport.base import Transport, strip_share

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Envelope)
TypedHandler = Callable[[topics.TopicParts, M], None]


class Router:
    def __init__(self, transport: Transport, *, counters: Counters, max_bytes: int) -> None:
        self.transport = transport
        self.counters = counters
        self.max_bytes = max_bytes

    def on(self, pattern: str, message_type: type[M], handler: TypedHandler[M], *, qos: int = 1,
           check_source: bool = True) -> None:
        def _handle(topic: str, raw: bytes) -> None:
            if not raw:  # MQTT's way to clear a retained message (a retired round/model): not bad input
                self.counters.inc("retained_cleared")
                log.debug("retained message cleared", extra={"topic": topic[:200]})
                return
            message = self.accept(topic, raw, message_type, check_source=check_source)
            if message is None:
                return
            try:
                handler(topics.parse(topic), message)
            except Exception:
                self.counters.inc("rejected.handler_error")
                log.exception("handler failed", extra={"topic": topic, "trace_id": message.trace_id})

        self.transport.subscribe(pattern, _handle, qos=qos)
        log.debug("subscribed", extra={"pattern": strip_share(pattern), "type": message_type.__name__})

    def accept(self, topic: str, raw: bytes, message_type: type[M], *, check_source: bool = True) -> M | None:
        """Decode and validate one payload; None (counted and logged) when it must be rejected."""
        try:
            message = decode(raw, max_bytes=self.max_bytes)
            if not isinstance(message, message_type):
                raise DecodeError("wrong_type", f"expected {message_type.__name__}, got {message.type}")
            parts = topics.parse(topic)
            if check_source and parts.kind not in ("cmd", "fl_round", "fl_model") and (
                message.source != parts.device_id
                or (parts.patient_id is not None and message.patient_id != parts.patient_id)
            ):
                raise DecodeError("wrong_topic", "source/patient do not match the topic")
        except DecodeError as exc:
            self._reject(topic, exc.reason, exc.detail)
            return None
        except ValueError as exc:  # topic outside the layout
            self._reject(topic, "wrong_topic", str(exc))
            return None
        self.counters.inc(f"accepted.{message.type}")
        return message

    def _reject(self, topic: str, reason: str, detail: str) -> None:
        self.counters.inc(f"rejected.{reason}")
        log.warning("rejected message", extra={"topic": topic[:200], "reason": reason, "detail": detail[:300]})

    def publish(self, topic: str, message: Envelope, *, qos: int = 1, retain: bool = False) -> None:
        self.transport.publish(topic, encode(message), qos=qos, retain=retain)
