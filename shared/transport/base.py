"""The Transport protocol: bytes in, bytes out. Serialisation happens in `shared.messages.codec`."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

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

    def unsubscribe(self, pattern: str, handler: Handler) -> None:
        """Stop calling `handler` for `pattern`; the broker subscription ends with the pattern's last handler.
        Safe from inside a handler (a watch stops reading full models once it holds one)."""

    def is_connected(self) -> bool: ...


def strip_share(pattern: str) -> str:
    """`$share/group/a/+/b` → `a/+/b`: what a shared subscription actually matches."""
    if pattern.startswith("$share/"):
        return pattern.split("/", 2)[2]
    return pattern


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    """An MQTT filter as a regular expression, built once: paho's `topic_matches_sub` builds a matcher tree on
    every call, which was the largest single cost of the edge's message path (bench/scale.py)."""
    levels = strip_share(pattern).split("/")
    out = ""
    for i, level in enumerate(levels):
        if level == "#":  # the parent level and any number of children: a/# matches a, a/b, a/b/c
            out += "(?:/.*)?" if i else ".*"
            break
        out += ("/" if i else "") + ("[^/]*" if level == "+" else re.escape(level))
    wildcard_root = levels[0] in ("+", "#")
    return re.compile(("(?!\\$)" if wildcard_root else "") + out + "\\Z")


def matches(pattern: str, topic: str) -> bool:
    """MQTT matching (a topic starting with `$` is not matched by a wildcard at the root, per the spec)."""
    return _compiled(pattern).match(topic) is not None
