"""The edge's live registry of its site's devices: their last capabilities, and whether they are still fresh.

A device's entry is fresh for three of its own refresh periods; after that the edge treats its state as
unknown (not as the last thing it said): a phone that stopped refreshing at 90 % battery may be flat now.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from shared import topics
from shared.messages import CapabilitiesMessage, CapabilitiesPayload
from shared.transport import Router

#: A device silent for this many of its own refresh periods is unknown again.
STALE_AFTER_REFRESHES = 3.0


@dataclass(frozen=True, slots=True)
class Entry:
    capabilities: CapabilitiesPayload
    patient_id: str | None
    received: float  # monotonic

    def fresh(self, now: float) -> bool:
        return now - self.received <= STALE_AFTER_REFRESHES * self.capabilities.refresh_s


class DeviceRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}

    def update(self, device_id: str, patient_id: str | None, capabilities: CapabilitiesPayload,
               now: float | None = None) -> None:
        with self._lock:
            self._entries[device_id] = Entry(capabilities, patient_id, time.monotonic() if now is None else now)

    def get(self, device_id: str, now: float | None = None) -> CapabilitiesPayload | None:
        """The device's capabilities if fresh; None when unknown or stale."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._entries.get(device_id)
        return entry.capabilities if entry is not None and entry.fresh(now) else None

    def fresh(self, now: float | None = None) -> dict[str, CapabilitiesPayload]:
        now = time.monotonic() if now is None else now
        with self._lock:
            return {d: e.capabilities for d, e in self._entries.items() if e.fresh(now)}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def follow(router: Router, site: str, registry: DeviceRegistry) -> None:
    """Keep `registry` current from the site's retained capabilities (every component that needs it)."""
    def on_capabilities(parts: topics.TopicParts, msg: CapabilitiesMessage) -> None:
        registry.update(msg.source, msg.patient_id, msg.payload)
        router.counters.inc("capabilities.received")

    router.on(topics.capabilities(site, topics.ANY), CapabilitiesMessage, on_capabilities)
