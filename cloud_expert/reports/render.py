"""The first (preliminary) HTML report of an episode: pure, plain data in, one HTML string out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cloud_expert.reports.ecg_svg import strip_svg
from shared.messages import AlertMessage, AnalysisMessage, Hop, TriagePayload


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything a report shows; built from a stored episode, free of DB types."""

    report_id: str
    site: str
    patient_id: str
    level: str
    drill: bool
    trace_id: str
    alert: AlertMessage
    analysis: AnalysisMessage | None
    triage: TriagePayload
    hops: list[Hop]
    created_at: datetime

    @classmethod
    def from_json(
        cls, *, report_id: str, site: str, patient_id: str, level: str, drill: bool, trace_id: str,
        alert_json: dict[str, Any], analysis_json: dict[str, Any] | None, triage_json: dict[str, Any],
        hops_json: list[dict[str, Any]], created_at: datetime,
    ) -> ReportInput:
        """Rebuild the typed messages from the JSON an episode row keeps verbatim."""
        return cls(
            report_id=report_id, site=site, patient_id=patient_id, level=level, drill=drill, trace_id=trace_id,
            alert=AlertMessage.model_validate(alert_json),
            analysis=AnalysisMessage.model_validate(analysis_json) if analysis_json else None,
            triage=TriagePayload.model_validate(triage_json),
            hops=[Hop.model_validate(h) for h in hops_json],
            created_at=created_at,
        )


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=PackageLoader("cloud_expert.reports", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    return env


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _hop_rows(alert_created: datetime, hops: list[Hop]) -> list[dict[str, Any]]:
    return [{"name": h.name, "source": h.source, "at": h.at.isoformat(timespec="milliseconds"),
             "ms": (h.at - alert_created).total_seconds() * 1000.0} for h in hops]


def render_report_html(data: ReportInput) -> str:
    """The report page: drill banner, triage, watch alert, phone findings, ECG strip, hop timeline."""
    strip = data.alert.payload.strip
    svg = strip_svg(strip.to_mv(), fs=strip.fs, event_s=strip.event_s, label=strip.lead)
    return _env().get_template("report.html").render(
        d=data, alert=data.alert.payload, analysis=data.analysis.payload if data.analysis else None,
        triage=data.triage, strip=strip, strip_svg=Markup(svg),  # svg: numbers + escaped label
        hops=_hop_rows(data.alert.created_at, data.hops),
    )
