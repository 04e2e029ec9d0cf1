"""The Transport protocol: bytes in, bytes out. Serialisation happens in `shared.messages.codec`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from paho.mqtt.client import topic_matches_sub

Handler = Callable[[str, bytes], None]


class Transport(Protocol):
    client_id: str

    def start(self, *, wait_s: float | None = None) -> None:
        """Connect in the background; with `wait_s`, block until connected (TimeoutError otherwise)."""

    def stop(self) -> None: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a message. QoS ≥ 1 messages survive a disconnect (and, with an outbox, a restart)."""

    def subscribe(self, pattern: str, handler: Handler, *, qos: int = 1) -> None:
        """Call `handler(topic, payload)` for every message matching `pattern` (may be `$share/...`)."""

    def is_connected(self) -> bool: ...


def strip_share(pattern: str) -> str:
    """`$share/group/a/+/b` → `a/+/b`: what a shared subscription actually matches."""
    if pattern.startswith("$share/"):
        return pattern.split("/", 2)[2]
    return pattern


def matches(pattern: str, topic: str) -> bool:
    return bool(topic_matches_sub(strip_share(pattern), topic))
