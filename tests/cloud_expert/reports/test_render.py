"""render_report_html: pure rendering of every section, drill banner, escaping."""

from __future__ import annotations

from cloud_expert.reports.render import ReportInput, render_report_html
from tests.cloud_expert.factories import report_input

_input = report_input


def test_report_has_every_section() -> None:
    html = render_report_html(_input())
    for text in ("Preliminary — requires clinician review", "p-abc", "home-7", "watch-1", "EMERGENCY",
                 "HR 182 bpm &gt; 150", "tachycardia", "rate-v1", "Evidence: qrs_ms", "sinus_tachycardia",
                 "176 / 180 / 184 bpm", "SDNN", "RMSSD", "pNN50", "<svg", "<polyline", "cloud_ingest", "80.0"):
        assert text in html, text
    assert "DRILL" not in html


def test_drill_banner_is_unmistakable() -> None:
    html = render_report_html(_input(drill=True))
    assert 'class="drill" role="alert"' in html
    assert "DRILL — NOT A REAL PATIENT EVENT" in html
    assert "<title>[DRILL]" in html


def test_without_analysis() -> None:
    html = render_report_html(_input(with_analysis=False))
    assert "No phone analysis arrived before escalation." in html


def test_message_text_is_escaped() -> None:
    data = _input()
    triage = data.triage.model_copy(update={"reasons": ["<script>alert(1)</script>"]})
    html = render_report_html(ReportInput(**{**{f: getattr(data, f) for f in data.__slots__}, "triage": triage}))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


def test_from_json_round_trip() -> None:
    data = _input()
    rebuilt = ReportInput.from_json(
        report_id=data.report_id, site=data.site, patient_id=data.patient_id, level=data.level, drill=data.drill,
        trace_id=data.trace_id, alert_json=data.alert.model_dump(mode="json", by_alias=True),
        analysis_json=data.analysis.model_dump(mode="json", by_alias=True) if data.analysis else None,
        triage_json=data.triage.model_dump(mode="json"), hops_json=[h.model_dump(mode="json") for h in data.hops],
        created_at=data.created_at,
    )
    assert render_report_html(rebuilt) == render_report_html(data)
