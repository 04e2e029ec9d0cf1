"""Typed dispatch on top of a Transport: decode → check → call the handler, counting every rejection.

Each component registers `(pattern, MessageType, handler)` triples. Anything that is oversized, not
JSON, of an unknown or unexpected type, invalid against its schema, or claims a source/patient other
than the topic it arrived on is rejected, counted under `rejected.<reason>` and logged, and the
component carries on.

A handler that raises is never fatal and never a silent loss: it is counted (`rejected.handler_error`),
the message goes to the transport's dead-letter store (`shared.transport.dead_letters`: durable beside
the outbox for MQTT, in memory otherwise) *before* the transport acknowledges it, and a retry thread
hands it to the same handler again with backoff until it succeeds or is parked for an operator.
Handlers are idempotent by message id, so a retry after a partial effect is harmless. Handler calls,
first tries and retries alike, are serialised: a component sees one message at a time, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from shared import topics
from shared.messages import DecodeError, Envelope, decode, encode, load_object, validate_object
from shared.messages.envelope import utcnow
from shared.metrics import Counters
from shared.transport.base import Transport, matches, strip_share
from shared.transport.dead_letters import PARKED, DeadLetterStore
from shared.transport.freshness import Freshness

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Envelope)
TypedHandler = Callable[[topics.TopicParts, M], None]


RETRY_POLL_S = 0.5
#: Longest sleep of the retrier of a store in memory with nothing due (it is woken when a message is kept).
RETRY_IDLE_S = 30.0
#: The largest payload each kind of message needs, with room to spare, so a flood of oversized small
#: messages is refused before it is parsed (an alert's 60 s strip at 1 kHz is ≈ 160 KB as base64 int16).
#: Kinds not listed (escalations, reports, FL) get the component's `max_bytes`.
KIND_LIMITS: dict[str, int] = {
    "presence": 8 * 1024, "capabilities": 8 * 1024, "cmd": 8 * 1024, "label": 8 * 1024, "vitals": 16 * 1024,
    "triage": 64 * 1024,
    "strip": 256 * 1024, "analysis": 256 * 1024, "alert": 384 * 1024,
}

#: Topic kinds whose device segment names the addressee (commands, labels) or nobody (a federation's round
#: and models): the envelope's source cannot be checked against the topic.
UNSOURCED_KINDS = frozenset({"cmd", "label", "fl_round", "fl_model", "fl_model_delta"})


class Router:
    def __init__(self, transport: Transport, *, counters: Counters, max_bytes: int,
                 dead_letters: DeadLetterStore | None = None, background_retry: bool = True,
                 freshness: Freshness | None = None) -> None:
        """`background_retry=False` leaves `retry_due()` to the caller (tests drive it step by step);
        `freshness` refuses stale, future-dated and replayed envelopes (`shared.transport.freshness`)."""
        self.transport = transport
        self.counters = counters
        self.max_bytes = max_bytes
        self.dead_letters = dead_letters or getattr(transport, "dead_letters", None) or DeadLetterStore(":memory:")
        self._routes: list[tuple[str, Callable[[str, bytes], None]]] = []
        self._subscriptions: list[tuple[str, Callable[[str, bytes], None]]] = []  # (pattern, transport handler)
        self._dispatch = threading.RLock()  # RLock: an in-memory bus delivers a handler's own publishes inline
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._retrier: threading.Thread | None = None
        self._retrier_lock = threading.Lock()
        self._background = background_retry
        self.freshness = freshness or Freshness()
        attach = getattr(transport, "attach_counters", None)
        if attach is not None:  # the transport's own failures (an outbox it cannot write) count with ours
            attach(counters)

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
                with self._dispatch:
                    handler(topics.parse(topic), message)
            except Exception as exc:
                self.counters.inc("rejected.handler_error")
                log.exception("handler failed; kept for retry", extra={"topic": topic, "trace_id": message.trace_id})
                self._keep(topic, raw, exc)

        def _retry(topic: str, raw: bytes) -> None:
            message = decode(raw, max_bytes=self.max_bytes)  # accepted once already: same bytes, same result
            if not isinstance(message, message_type):
                raise DecodeError("wrong_type", f"expected {message_type.__name__}, got {message.type}")
            with self._dispatch:
                handler(topics.parse(topic), message)

        self._routes.append((pattern, _retry))
        self._subscriptions.append((pattern, _handle))
        # always running (a sleeping daemon): rows a previous run left, and rows an operator replays while the
        # component runs (`cardiomesh dead-letters replay`), are retried once their route is registered
        self._ensure_retrier()
        self.transport.subscribe(pattern, _handle, qos=qos)
        log.debug("subscribed", extra={"pattern": strip_share(pattern), "type": message_type.__name__})

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Run a block as a handler runs: no handler of this router runs meanwhile. Code outside the handlers that
        changes what a component subscribes to takes it, so it never races a handler doing the same."""
        with self._dispatch:
            yield

    def off(self, pattern: str) -> None:
        """Undo every `on(pattern, …)` of this router: no more deliveries, and its kept messages wait for a route
        again. Safe from inside a handler."""
        mine = [h for p, h in self._subscriptions if p == pattern]
        self._subscriptions = [(p, h) for p, h in self._subscriptions if p != pattern]
        self._routes = [(p, r) for p, r in self._routes if p != pattern]
        for handle in mine:
            self.transport.unsubscribe(pattern, handle)
        log.debug("unsubscribed", extra={"pattern": strip_share(pattern)})

    def accept(self, topic: str, raw: bytes, message_type: type[M], *, check_source: bool = True) -> M | None:
        """Decode and validate one payload; None (counted and logged) when it must be rejected."""
        try:
            parts = topics.parse(topic)
            data = load_object(raw, max_bytes=min(self.max_bytes, KIND_LIMITS.get(parts.kind, self.max_bytes)))
            # the envelope's claims first: a wrong or spoofed message costs a JSON parse, not a schema validation
            expected = message_type.model_fields["type"].default
            if isinstance(expected, str) and data["type"] != expected:
                raise DecodeError("wrong_type", f"expected {message_type.__name__}, got {data['type']}")
            if check_source and parts.kind not in UNSOURCED_KINDS and isinstance(
                    data.get("source"), str) and (
                data["source"] != parts.device_id
                or (parts.patient_id is not None and data.get("patient_id") != parts.patient_id)
            ):
                raise DecodeError("wrong_topic", "source/patient do not match the topic")
            message = validate_object(data)  # a source that is not a string fails here, as `invalid`
            if not isinstance(message, message_type):
                raise DecodeError("wrong_type", f"expected {message_type.__name__}, got {message.type}")
            refused = self.freshness.check(kind=parts.kind, message_type=message.type, source=message.source,
                                           message_id=message.id, seq=message.seq,
                                           created_at=message.created_at, now=utcnow())
            if refused is not None:
                raise DecodeError(refused, f"source={message.source} seq={message.seq} "
                                           f"created_at={message.created_at.isoformat()}")
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

    # -- dead letters ----------------------------------------------------------------------------
    def _keep(self, topic: str, raw: bytes, exc: Exception) -> None:
        try:
            row = self.dead_letters.add(topic, raw, f"{type(exc).__name__}: {exc}")
        except Exception:  # the local store failed too: nothing left to keep it in, say so loudly
            self.counters.inc("dead_letters.lost")
            log.exception("dead-letter store failed: message lost", extra={"topic": topic})
            return
        self.counters.inc("dead_letters.kept")
        log.warning("message kept for retry", extra={"topic": topic, "dead_letter": row})
        self._ensure_retrier()

    def _ensure_retrier(self) -> None:
        with self._retrier_lock:
            if self._retrier is None and self._background and not self._closed.is_set():
                self._retrier = threading.Thread(target=self._retry_loop, name="router-retry", daemon=True)
                self._retrier.start()
        self._wake.set()

    def _retry_wait_s(self) -> float:
        """How long the retrier sleeps. A durable store is looked at every RETRY_POLL_S: an operator's replay
        (`cardiomesh dead-letters replay`) changes it from another process. A store in this process's memory changes
        only through this router, which wakes the retrier when it keeps a message: it sleeps until the next kept
        message is due (at most RETRY_IDLE_S). Polling every store twice a second cost 1,000 simulated watches,
        one router each, about 0.3 ms of CPU per watch per second while they trained (bench/fl_scale.py)."""
        if self.dead_letters.path is not None:
            return RETRY_POLL_S
        try:
            due = self.dead_letters.next_due()
        except Exception:  # the store itself failed: look again soon, as before
            return RETRY_POLL_S
        return RETRY_IDLE_S if due is None else min(RETRY_IDLE_S, max(0.0, due - time.time()))

    def _retry_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._retry_wait_s())
            self._wake.clear()
            if not self._closed.is_set():
                try:
                    self.retry_due()
                except Exception:  # the store itself failed: say so, try again next poll
                    self.counters.inc("dead_letters.retry_failed")
                    log.exception("retrying kept messages failed")

    def retry_due(self, now: float | None = None) -> int:
        """Hand every dead letter due by `now` to its handler again; the number that succeeded."""
        done = 0
        for letter in self.dead_letters.due(now):
            route = next((r for p, r in self._routes if matches(p, letter.topic)), None)
            if route is None:
                continue  # its route is not registered (yet): stays due
            try:
                route(letter.topic, letter.payload)
            except Exception as exc:
                again = self.dead_letters.failed_again(letter.row_id, f"{type(exc).__name__}: {exc}")
                if again is not None and again.state == PARKED:
                    self.counters.inc("dead_letters.parked")
                    log.error("message parked after %d tries: an operator must replay it (cardiomesh dead-letters)",
                              again.attempts, extra={"topic": letter.topic, "dead_letter": letter.row_id})
                continue
            self.dead_letters.remove(letter.row_id)
            self.counters.inc("dead_letters.recovered")
            log.info("kept message handled", extra={"topic": letter.topic, "dead_letter": letter.row_id,
                                                    "attempts": letter.attempts + 1})
            done += 1
        return done

    def close(self) -> None:
        """Stop the retry thread (rows stay in the store for the next run)."""
        self._closed.set()
        self._wake.set()
        if self._retrier is not None and self._retrier is not threading.current_thread():
            self._retrier.join(timeout=5)

    def publish(self, topic: str, message: Envelope, *, qos: int = 1, retain: bool = False) -> None:
        self.transport.publish(topic, encode(message), qos=qos, retain=retain)
