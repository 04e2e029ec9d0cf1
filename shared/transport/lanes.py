"""The order a component handles what the broker delivered: acknowledged messages (QoS ≥ 1: alerts, commands,
findings, escalations) before best-effort telemetry (QoS 0: 1 Hz vitals, live strip chunks).

One dispatcher thread serves both lanes, the first always first: an alert that arrives behind a second of
vitals from thousands of watches is handled next, not after them (bench/scale.py measured the wait). Within a
lane the order is the broker's, so QoS 1 acknowledgements still go out in the order the messages came (as MQTT
3.1.1 asks). The telemetry lane is bounded: past `max_routine` waiting, the oldest telemetry is shed and
counted (`shed.telemetry`) — never an acknowledged message.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

from shared.metrics import Counters

T = TypeVar("T")

#: telemetry waiting before the oldest is shed: ten seconds of 1 Hz vitals from 2,000 watches
MAX_ROUTINE = 20_000


class Lanes(Generic[T]):
    def __init__(self, counters: Counters | None = None, *, max_routine: int = MAX_ROUTINE) -> None:
        self._cond = threading.Condition()
        self._urgent: deque[T | None] = deque()
        self._routine: deque[T] = deque()
        self._max_routine = max_routine
        self.counters = counters or Counters()

    def put(self, item: T | None, *, urgent: bool) -> None:
        """`None` (on the urgent lane) stops the consumer once everything urgent before it is handled."""
        with self._cond:
            if urgent or item is None:
                self._urgent.append(item)
            else:
                if len(self._routine) >= self._max_routine:
                    self._routine.popleft()
                    self.counters.inc("shed.telemetry")
                self._routine.append(item)
            self._cond.notify()

    def get(self) -> T | None:
        with self._cond:
            while not self._urgent and not self._routine:
                self._cond.wait()
            if self._urgent:
                return self._urgent.popleft()
            return self._routine.popleft()

    def depth(self) -> tuple[int, int]:
        with self._cond:
            return len(self._urgent), len(self._routine)
