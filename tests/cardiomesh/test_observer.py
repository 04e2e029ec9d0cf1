"""The demo's books: counts, lost alerts, and drills kept out of the clinical figures."""

from cardiomesh.observer import Observer
from shared.messages import (
    AlertMessage,
    EscalationMessage,
    EscalationPayload,
    ReportMessage,
    ReportPayload,
    TriageMessage,
    TriagePayload,
)
from tests import factories


def _triage(alert: AlertMessage, stage: str = "final", level: str = "urgent") -> TriageMessage:
    return TriageMessage(source="edge-1", patient_id=alert.patient_id, trace_id=alert.trace_id, drill=alert.drill,
                         payload=TriagePayload(alert_id=alert.payload.alert_id, level=level, stage=stage))


def _escalation(alert: AlertMessage) -> EscalationMessage:
    triage = _triage(alert).payload
    return EscalationMessage(source="edge-1", patient_id=alert.patient_id, trace_id=alert.trace_id,
                             drill=alert.drill,
                             payload=EscalationPayload(alert_id=alert.payload.alert_id, site="s", level="urgent",
                                                       alert=alert, triage=triage))


def _report(alert: AlertMessage) -> ReportMessage:
    return ReportMessage(source="cloud", patient_id=alert.patient_id, trace_id=alert.trace_id, drill=alert.drill,
                         payload=ReportPayload(report_id="r1", alert_id=alert.payload.alert_id, level="urgent",
                                               url="/reports/r1"))


def test_complete_chain_is_not_lost() -> None:
    obs = Observer()
    a = factories.alert()
    for m in (a, factories.analysis(a), _triage(a, "initial"), _triage(a), _escalation(a), _report(a)):
        obs.observe(m)
    assert obs.summary() == {"alerts": 1, "analyses": 1, "responses": 0, "escalations": 1, "reports": 1,
                             "disclosures": 0, "lost": 0}
    assert obs.settled()


def test_untriaged_and_unreported_alerts_are_lost() -> None:
    obs = Observer()
    never_triaged = factories.alert()
    escalated_only = factories.alert()
    info_only = factories.alert()
    obs.observe(never_triaged)
    for m in (escalated_only, _triage(escalated_only), _escalation(escalated_only)):
        obs.observe(m)
    for m in (info_only, _triage(info_only, level="info")):
        obs.observe(m)
    assert obs.summary()["lost"] == 2 and not obs.settled()


def test_drills_are_counted_apart() -> None:
    obs = Observer()
    drill = factories.alert(drill=True)
    for m in (drill, _triage(drill), _escalation(drill), _report(drill)):
        obs.observe(m)
    assert obs.summary()["alerts"] == 0 and obs.summary()["reports"] == 0
    assert obs.drill_summary()["alerts"] == 1 and obs.drill_summary()["reports"] == 1
