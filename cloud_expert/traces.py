"""An episode's hops as an OpenTelemetry trace (OTLP/JSON): one span per hop, from the previous hop to it, all
under the episode's `trace_id`, so any OTLP collector (Jaeger, Tempo) can show where an episode spent its
time: `curl …/api/episodes/ID/trace | curl -X POST -H 'Content-Type: application/json' -d @- COLLECTOR:4318/v1/traces`.

No patient data goes in: hop names, the host that stamped each, site, kind, level and the drill mark.
Hop times come from different hosts' clocks (docs/deploy.md: NTP on every host); a negative duration is kept
as a zero-length span with `cardiomesh.clock_skew_ms` saying by how much, never hidden.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.messages import Hop

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def otel_trace_id(trace_id: str) -> str:
    """Our trace ids are uuid4 hex (already OTel's 16-byte form); anything else is hashed into that form."""
    return trace_id if _HEX32.match(trace_id) else hashlib.sha256(trace_id.encode()).hexdigest()[:32]


def _span_id(trace_id: str, index: int, name: str) -> str:
    return hashlib.sha256(f"{trace_id}/{index}/{name}".encode()).hexdigest()[:16]


def _nanos(at: datetime) -> str:
    return str(int(at.timestamp() * 1_000_000) * 1000)  # OTLP/JSON carries 64-bit integers as strings


def _attr(key: str, value: str | bool | int) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def episode_trace(trace_id: str, hops: Sequence[Hop], *, alert_id: str, site: str, kind: str, level: str,
                  drill: bool) -> dict[str, Any]:
    """OTLP/JSON `ExportTraceServiceRequest`: a root span over the whole episode and a child per hop."""
    tid = otel_trace_id(trace_id)
    ordered = list(hops)
    root_id = _span_id(trace_id, -1, "episode")
    spans: list[dict[str, Any]] = []
    if ordered:
        start, end = ordered[0].at, max(h.at for h in ordered)
        spans.append({"traceId": tid, "spanId": root_id, "name": f"episode {kind}", "kind": 1,
                      "startTimeUnixNano": _nanos(start), "endTimeUnixNano": _nanos(end),
                      "attributes": [_attr("cardiomesh.alert_id", alert_id), _attr("cardiomesh.site", site),
                                     _attr("cardiomesh.kind", kind), _attr("cardiomesh.level", level),
                                     _attr("cardiomesh.drill", drill)]})
    for i, hop in enumerate(ordered):
        previous = ordered[i - 1].at if i else hop.at
        skew_ms = (previous - hop.at).total_seconds() * 1000
        attributes = [_attr("cardiomesh.hop", hop.name), _attr("cardiomesh.source", hop.source)]
        if skew_ms > 0:
            attributes.append(_attr("cardiomesh.clock_skew_ms", round(skew_ms)))
        spans.append({"traceId": tid, "spanId": _span_id(trace_id, i, hop.name), "parentSpanId": root_id,
                      "name": hop.name, "kind": 1, "startTimeUnixNano": _nanos(min(previous, hop.at)),
                      "endTimeUnixNano": _nanos(hop.at), "attributes": attributes})
    return {"resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", "cardiomesh"), _attr("cardiomesh.site", site)]},
        "scopeSpans": [{"scope": {"name": "cardiomesh.hops", "version": "1"}, "spans": spans}],
    }]}
