"""Drill hops judged against their service levels (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cardiomesh.drill import HopLine
from cardiomesh.slo import DEFAULT_SLOS, judge

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _hops(*spec: tuple[str, float]) -> list[HopLine]:
    return [HopLine(name, "x", T0 + timedelta(milliseconds=ms)) for name, ms in spec]


def test_each_slo_is_measured_between_its_hops_and_judged() -> None:
    verdicts = judge(_hops(("drill requested", 0), ("watch alert", 8000), ("edge response", 8004),
                           ("edge triage (initial)", 8006), ("edge escalation", 13000), ("report rendered", 13180),
                           ("edge_received", 8001), ("edge_response", 8013.5)))
    assert [(v.slo.name, round(v.measured_ms or -1, 1), v.passed) for v in verdicts] == [
        ("detection → edge response", 4.0, True), ("edge decision (received → response)", 12.5, False),
        ("detection → initial triage", 6.0, True), ("escalation → report rendered", 180.0, True),
        ("report → on the dashboard", -1, True)]  # the drill did not look: not judged
    assert verdicts[0].line().startswith("  PASS  detection → edge response")


def test_a_late_or_missing_hop_is_a_miss() -> None:
    verdicts = judge(_hops(("watch alert", 0), ("edge response", 1500)))
    assert [(v.passed, v.applies) for v in verdicts] == [(False, True), (True, False), (False, True), (True, False),
                                                         (True, False)]
    assert verdicts[0].measured_ms == 1500.0 and verdicts[2].measured_ms is None
    assert "MISS" in verdicts[2].line() and "not seen" in verdicts[2].line()
    assert verdicts[3].line().startswith("  n/a") and "not reached" in verdicts[3].line()  # never escalated
    assert len(DEFAULT_SLOS) == 5
