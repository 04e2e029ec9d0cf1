"""Service levels a drill is judged against, hop by hop, from the hops it saw.

Hop times come from different hosts' clocks: the watch stamps its alert, the edge its response, the cloud
its report. Each SLO here is measured between hops stamped by hosts that are expected to be NTP-synced
(docs/deploy.md: an NTP client on every host); a skew shows as a negative or
inflated duration, and a negative one is reported as such rather than hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Hop(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    start: str  # hop name: its first occurrence
    end: str  # hop name: its first occurrence after the start
    limit_ms: float
    optional: bool = False  # a drill may rightly never reach `start` (an info triage is not escalated)
    applies_if: str | None = None  # judged only when a hop of this name was recorded (the drill looked)


@dataclass(frozen=True, slots=True)
class Verdict:
    slo: Slo
    measured_ms: float | None  # None: a hop was not seen
    applies: bool = True  # False: the drill never reached the SLO's first hop where that is allowed
    why_not: str = "not reached"  # what an n/a line says

    @property
    def passed(self) -> bool:
        return not self.applies or (self.measured_ms is not None and self.measured_ms <= self.slo.limit_ms)

    def line(self) -> str:
        if not self.applies:
            return f"  n/a   {self.slo.name:<34} {self.why_not:>12}  (SLO ≤ {self.slo.limit_ms:g} ms)"
        got = "not seen" if self.measured_ms is None else f"{self.measured_ms:9.1f} ms"
        return f"  {'PASS' if self.passed else 'MISS'}  {self.slo.name:<34} {got:>12}  (SLO ≤ {self.slo.limit_ms:g} ms)"


DEFAULT_SLOS = (
    Slo("detection → edge response", "watch alert", "edge response", 1000.0),
    # both stamped by the edge (recorded on the episode, so seen once it is escalated): no skew between hosts
    Slo("edge decision (received → response)", "edge_received", "edge_response", 10.0, optional=True),
    Slo("detection → initial triage", "watch alert", "edge triage (initial)", 1000.0),
    Slo("escalation → report rendered", "edge escalation", "report rendered", 60_000.0, optional=True),
    # judged when the drill looked for its report on the dashboard (`drill run --dashboard`, or a drill the
    # dashboard runs itself); the worker's clock against the looking host's
    Slo("report → on the dashboard", "report rendered", "report on dashboard", 2_000.0, optional=True,
        applies_if="dashboard looked"),
)


def judge(hops: Sequence[Hop], slos: Sequence[Slo] = DEFAULT_SLOS) -> list[Verdict]:
    verdicts = []
    for slo in slos:
        if slo.applies_if is not None and not any(h.name == slo.applies_if for h in hops):
            verdicts.append(Verdict(slo, None, applies=False, why_not="not looked for"))
            continue
        start = next((h for h in hops if h.name == slo.start), None)
        end = next((h for h in hops if h.name == slo.end and start is not None and h.at >= start.at), None)
        if start is None and slo.optional:
            verdicts.append(Verdict(slo, None, applies=False))
        elif start is None or end is None:
            verdicts.append(Verdict(slo, None))
        else:
            verdicts.append(Verdict(slo, (end.at - start.at).total_seconds() * 1000))
    return verdicts
