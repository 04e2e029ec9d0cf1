"""An in-memory bus for unit tests of handlers and wiring: synchronous, no network, same semantics."""

from __future__ import annotations

import threading
from collections.abc import Callable

from shared.transport.base import Handler, matches


class InMemoryBus:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._subs: list[tuple[str, Handler]] = []
        self.retained: dict[str, bytes] = {}
        self.published: list[tuple[str, bytes, int, bool]] = []

    def transport(self, client_id: str) -> InMemoryTransport:
        return InMemoryTransport(self, client_id)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        with self._lock:
            self.published.append((topic, payload, qos, retain))
            if retain:
                self.retained[topic] = payload
            targets = [h for p, h in self._subs if matches(p, topic)]
        for handler in targets:
            handler(topic, payload)

    def _subscribe(self, pattern: str, handler: Handler) -> None:
        with self._lock:
            self._subs.append((pattern, handler))
            retained = [(t, p) for t, p in self.retained.items() if matches(pattern, t)]
        for topic, payload in retained:
            handler(topic, payload)

    def _unsubscribe_one(self, pattern: str, handler: Handler) -> None:
        with self._lock:
            self._subs = [(p, h) for p, h in self._subs if not (p == pattern and h is handler)]

    def _unsubscribe(self, handlers: list[Handler]) -> None:
        with self._lock:
            self._subs = [(p, h) for p, h in self._subs if not any(h is mine for mine in handlers)]

    def topics(self, predicate: Callable[[str], bool] = lambda _t: True) -> list[str]:
        return [t for t, *_ in self.published if predicate(t)]


class InMemoryTransport:
    def __init__(self, bus: InMemoryBus, client_id: str) -> None:
        self.client_id = client_id
        self._bus = bus
        self._started = False
        self._handlers: list[Handler] = []

    def start(self, *, wait_s: float | None = None) -> None:
        self._started = True

    def stop(self) -> None:
        """Like a disconnect with a clean session: this transport's subscriptions go."""
        self._started = False
        self._bus._unsubscribe(self._handlers)
        self._handlers = []

    def is_connected(self) -> bool:
        return self._started

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        self._bus._publish(topic, payload, qos, retain)

    def subscribe(self, pattern: str, handler: Handler, *, qos: int = 1) -> None:
        self._handlers.append(handler)
        self._bus._subscribe(pattern, handler)

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        self._handlers = [h for h in self._handlers if h is not handler]
        self._bus._unsubscribe_one(pattern, handler)
