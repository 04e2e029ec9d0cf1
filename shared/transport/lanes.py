"""The order a component handles what the broker delivered: emergency > urgent > routine > training.

- **emergency**: alerts — each may be a life-threatening rhythm until triaged; a watch's commands from its edge.
- **urgent**: findings, escalations, reports, labels, presence — clinical work and the state placement needs.
- **routine**: 1 Hz vitals, live strip chunks, capabilities, summaries, disclosures — telemetry.
- **training**: federated-learning rounds, models, updates, aggregates.

One dispatcher thread serves every lane, the higher always first, the broker's order within a lane (so QoS 1
acknowledgements still go out in the order the messages came, as MQTT 3.1.1 asks of each lane's messages).

**The reserve.** Work below emergency may use at most `1 − reserve` (80 % by default) of the dispatcher's time
over any second: a token bucket charged with each such message's handling time. Past it, routine and training
wait (backpressure) even when the dispatcher is free, so a flood never leaves an emergency queued behind it or
the process saturated; an emergency is never held back.

**Shedding.** Routine and training lanes are bounded. Past the bound the oldest *best-effort* (QoS 0) message
of that lane is shed, counted (`shed.routine`) and logged (every 1,000th, with the running total). An
acknowledged message is never shed: it waits, unacknowledged, so the broker stops sending more once its
in-flight window is full — backpressure reaches the sender instead of losing what was accepted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Generic, TypeVar

from shared.metrics import Counters

log = logging.getLogger(__name__)

T = TypeVar("T")


class Priority(IntEnum):
    EMERGENCY = 0
    URGENT = 1
    ROUTINE = 2
    TRAINING = 3


#: The last topic segment of a patient device topic → its lane (`cm/v1/{site}/{patient}/{device}/{kind}`).
KIND_PRIORITY: dict[str, Priority] = {
    "alert": Priority.EMERGENCY, "cmd": Priority.EMERGENCY,
    "analysis": Priority.URGENT, "triage": Priority.URGENT, "escalation": Priority.URGENT,
    "report": Priority.URGENT, "label": Priority.URGENT,
    "vitals": Priority.ROUTINE, "strip": Priority.ROUTINE, "summary": Priority.ROUTINE,
    "disclosure": Priority.ROUTINE,
}

#: Queued messages per lane before shedding (best-effort) or backpressure (acknowledged) — ten seconds of 1 Hz
#: vitals from 2,000 watches; federated-learning chunks are large, so fewer.
MAX_QUEUED: dict[Priority, int] = {Priority.ROUTINE: 20_000, Priority.TRAINING: 2_000}
RESERVE = 0.2
WINDOW_S = 1.0
_SHED_LOG_EVERY = 1000


def priority_of(topic: str, qos: int) -> Priority:
    """The lane of a delivered message, from its topic alone (no parsing of the payload before its turn)."""
    parts = topic.split("/")
    if len(parts) > 2 and parts[2] == "fl":
        return Priority.TRAINING
    if len(parts) == 5 and parts[3] in ("presence", "capabilities"):
        return Priority.URGENT if parts[3] == "presence" else Priority.ROUTINE
    found = KIND_PRIORITY.get(parts[-1])
    if found is not None:
        return found
    return Priority.URGENT if qos > 0 else Priority.ROUTINE


@dataclass(slots=True)
class _Queued(Generic[T]):
    item: T
    sheddable: bool


class Lanes(Generic[T]):
    def __init__(self, counters: Counters | None = None, *, reserve: float = RESERVE, window_s: float = WINDOW_S,
                 max_queued: dict[Priority, int] | None = None) -> None:
        if not 0 <= reserve < 1:
            raise ValueError(f"reserve must be in [0, 1): {reserve}")
        self._cond = threading.Condition()
        self._lanes: list[deque[_Queued[T]]] = [deque() for _ in Priority]
        self._stop = False
        self._max = dict(MAX_QUEUED if max_queued is None else max_queued)
        self.counters = counters or Counters()
        self._rate = 1.0 - reserve  # seconds of non-emergency work allowed per second
        self._capacity = self._rate * window_s
        self._tokens = self._capacity
        self._refilled = time.monotonic()
        self._charging_since: float | None = None  # when the non-emergency item now being handled was handed out

    def put(self, item: T | None, priority: Priority = Priority.URGENT, *, sheddable: bool = False) -> None:
        """`None` stops the consumer once every emergency and urgent message before it is handled."""
        with self._cond:
            if item is None:
                self._stop = True
            else:
                lane = self._lanes[priority]
                bound = self._max.get(priority)
                if bound is not None and len(lane) >= bound:
                    self._overflow(priority, lane)
                lane.append(_Queued(item, sheddable))
            self._cond.notify()

    def _overflow(self, priority: Priority, lane: deque[_Queued[T]]) -> None:
        name = priority.name.lower()
        victim = next((q for q in lane if q.sheddable), None)
        if victim is None:  # only acknowledged messages queued: keep them all; the broker's window holds the rest
            self.counters.inc(f"backpressure.{name}")
            return
        lane.remove(victim)
        self.counters.inc(f"shed.{name}")
        shed = self.counters.get(f"shed.{name}")
        if shed % _SHED_LOG_EVERY == 1:
            log.warning("%s messages shed: the %s lane is full (%d queued)", name, name, len(lane),
                        extra={"lane": name, "shed_total": shed})

    def _charge(self, now: float) -> None:
        """Refill the bucket, and charge it with the non-emergency item handled since the last `get`."""
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._charging_since is not None:
            self._tokens -= now - self._charging_since
            self._charging_since = None

    def get(self) -> T | None:
        with self._cond:
            self._charge(time.monotonic())
            while True:
                for priority in (Priority.EMERGENCY, Priority.URGENT):
                    if self._lanes[priority]:
                        if priority != Priority.EMERGENCY:
                            self._charging_since = time.monotonic()
                        return self._lanes[priority].popleft().item
                if self._stop:
                    return None
                waiting = self._lanes[Priority.ROUTINE] or self._lanes[Priority.TRAINING]
                if waiting and self._tokens > 0:
                    self._charging_since = time.monotonic()
                    return waiting.popleft().item
                if waiting:  # over budget: hold routine work until the bucket refills (or an emergency comes)
                    self.counters.inc("reserve.held")
                    self._cond.wait(-self._tokens / self._rate + 1e-3)
                else:
                    self._cond.wait()
                self._charge(time.monotonic())

    def depth(self) -> dict[str, int]:
        with self._cond:
            return {p.name.lower(): len(self._lanes[p]) for p in Priority}
