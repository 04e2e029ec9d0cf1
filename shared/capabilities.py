"""Every agent tells its edge what it can do and how loaded it is: a retained `CapabilitiesMessage`, refreshed.

Why retained and refreshed: an edge that (re)starts learns every device's state at once from the broker, and
a device that stops refreshing is known to be stale (`refresh_s` says when the next one is due) rather than
silently trusted. The CPU share and memory are measured on the process (psutil); a replayed device has no
battery or radio, so it simulates a battery (`SimulatedBattery`) and reports the link as unknown unless told.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from shared import topics
from shared.identity import Stamper
from shared.messages import CapabilitiesMessage, CapabilitiesPayload, encode
from shared.messages.device import Role
from shared.transport import Transport

log = logging.getLogger(__name__)

#: How often an agent refreshes its capabilities (an edge treats a device silent for 3× this as unknown).
REFRESH_S = 30.0


@dataclass(slots=True)
class SimulatedBattery:
    """A replayed wearable's battery: drains while worn, charges on the charger (percent per hour)."""

    pct: float = 80.0
    charging: bool = False
    drain_pct_per_h: float = 4.0
    charge_pct_per_h: float = 40.0
    _since: float = field(default_factory=time.monotonic)

    def read(self, now: float | None = None) -> tuple[float, bool]:
        now = time.monotonic() if now is None else now
        hours, self._since = (now - self._since) / 3600.0, now
        rate = self.charge_pct_per_h if self.charging else -self.drain_pct_per_h
        self.pct = min(100.0, max(0.0, self.pct + rate * hours))
        return round(self.pct, 1), self.charging


class LoadSampler:
    """This process's share of the machine's cores since the last reading, and its resident memory."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.cores = os.cpu_count() or 1
        self._last = (time.monotonic(), self._cpu_seconds())

    def _cpu_seconds(self) -> float:
        t = self._process.cpu_times()
        return float(t.user + t.system)

    def read(self) -> tuple[float, float]:
        """(cpu_util in 0..1 of all cores, resident MB)."""
        now, cpu = time.monotonic(), self._cpu_seconds()
        then, cpu_then = self._last
        self._last = (now, cpu)
        wall = max(now - then, 1e-6)
        util = min(1.0, max(0.0, (cpu - cpu_then) / (wall * self.cores)))
        return round(util, 3), round(self._process.memory_info().rss / 2**20, 1)


@dataclass(slots=True)
class OwnState:
    """What only the agent knows about itself; the reporter adds the measured load."""

    battery: SimulatedBattery | None = None
    link_quality: float | None = None
    model_variants: list[str] = field(default_factory=list)
    active_variant: str | None = None
    inference_ms: float | None = None
    busy: bool = False


class CapabilityReporter:
    """Publishes a device's capabilities when its agent's own loop calls `tick` (due every `refresh_s`) and at
    once on `publish` (a change worth telling now, such as a model switch): no thread of its own."""

    def __init__(self, transport: Transport, *, site: str, device_id: str, patient_id: str | None, role: Role,
                 state: Callable[[], OwnState] = OwnState, refresh_s: float = REFRESH_S,
                 sampler: LoadSampler | None = None) -> None:
        self.transport = transport
        self.topic = topics.capabilities(site, device_id)
        self.patient_id = patient_id
        self.role: Role = role
        self.state = state
        self.refresh_s = refresh_s
        self.sampler = sampler or LoadSampler()
        self.stamp = Stamper(device_id)
        self._next = 0.0
        self.last: CapabilitiesPayload | None = None

    def payload(self) -> CapabilitiesPayload:
        s = self.state()
        util, mem = self.sampler.read()
        battery_pct, charging = s.battery.read() if s.battery is not None else (None, None)
        backlog = getattr(self.transport, "outbox_backlog", None)
        return CapabilitiesPayload(
            role=self.role, refresh_s=self.refresh_s, cores=self.sampler.cores, cpu_util=util, mem_mb=mem,
            battery_pct=battery_pct, charging=charging, link_quality=s.link_quality,
            outbox_backlog=backlog() if callable(backlog) else 0, model_variants=list(s.model_variants),
            active_variant=s.active_variant, inference_ms=s.inference_ms, busy=s.busy,
        )

    def publish(self) -> None:
        try:
            self.last = payload = self.payload()
            message = CapabilitiesMessage(**self.stamp(patient_id=self.patient_id), payload=payload)
            self.transport.publish(self.topic, encode(message), qos=1, retain=True)
        except Exception:  # a missed refresh makes the device look stale at the edge: never worse than that
            log.exception("capabilities not published", extra={"topic": self.topic})

    def tick(self, now: float | None = None) -> None:
        """Publish if a refresh is due: for agents that have a loop of their own (a watch's replay), so a
        fleet of thousands of watches needs no thread each."""
        now = time.monotonic() if now is None else now
        if now >= self._next:
            self._next = now + self.refresh_s
            self.publish()

    def current(self) -> CapabilitiesPayload:
        """The latest state as published (what the edge sees), or measured now before the first publish."""
        return self.last if self.last is not None else self.payload()

