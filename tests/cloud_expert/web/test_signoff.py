"""Sign-off: sign, amend with a reason, reject — the report, its PDF and FHIR say so, the verdict becomes a
training label (never for a drill) that the cloud service publishes once, and every act is audited."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud_expert.db import Label, ReportReview
from cloud_expert.service import CloudService
from shared import topics
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.cloud_expert.web.conftest import PASSWORD, Seeded, add_account
from tests.cloud_expert.web.signin import csrf_of, sign_in


def _clinician(anonymous: TestClient, name: str = "dr-sign", sites: list[str] | None = None) -> str:
    add_account(anonymous, name, "clinician", sites)
    assert sign_in(anonymous, name, PASSWORD).status_code == 303
    return csrf_of(anonymous.get("/").text)


def _pdf_text(client: TestClient, report_id: str, tmp_path: Path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(client.get(f"/reports/{report_id}.pdf").content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_a_clinician_signs_and_everything_says_so(anonymous: TestClient, seeded: Seeded, tmp_path: Path) -> None:
    csrf = _clinician(anonymous)
    rid = seeded.clinical_report
    form = anonymous.get(f"/reports/{rid}/review")
    assert form.status_code == 200 and 'value="sign"' in form.text
    done = anonymous.post(f"/reports/{rid}/review", data={"csrf_token": csrf, "action": "sign",
                                                         "verdict": "true_alarm"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/reports/{rid}"
    assert "Signed by dr-sign at" in anonymous.get(f"/reports/{rid}").text
    assert "Signed by dr-sign" in _pdf_text(anonymous, rid, tmp_path)
    fhir = anonymous.get(f"/fhir/DiagnosticReport/{rid}").json()
    assert fhir["status"] == "final" and "Preliminary" not in fhir["conclusion"]
    meta = anonymous.get(f"/api/reports/{rid}").json()
    assert meta["status"] == "final" and meta["signed_by"] == "dr-sign"
    again = anonymous.post(f"/api/reports/{rid}/review", json={"action": "sign"}, headers={"x-csrf-token": csrf})
    assert again.status_code == 409 and "final report cannot be signed" in again.json()["detail"]
    with anonymous.app.state.sessions() as session:  # type: ignore[attr-defined]
        labels = session.scalars(select(Label).where(Label.report_id == rid)).all()
        assert [(lb.verdict, lb.published_at) for lb in labels] == [("true_alarm", None)]
        assert [r.action for r in session.scalars(select(ReportReview).where(ReportReview.report_id == rid))] == [
            "sign"]


def test_an_amendment_needs_its_reason_and_fhir_says_amended(anonymous: TestClient, seeded: Seeded) -> None:
    csrf = _clinician(anonymous, "dr-amend")
    rid, headers = seeded.clinical_report, {"x-csrf-token": csrf}
    assert anonymous.post(f"/api/reports/{rid}/review", json={"action": "amend", "reason": "x"},
                          headers=headers).status_code == 409  # a preliminary report is signed, not amended
    assert anonymous.post(f"/api/reports/{rid}/review", json={"action": "sign", "verdict": "false_alarm",
                                                             "rhythm": "sinus tachycardia"},
                          headers=headers).status_code == 200
    missing = anonymous.post(f"/api/reports/{rid}/review", json={"action": "amend"}, headers=headers)
    assert missing.status_code == 409 and "give the reason" in missing.json()["detail"]
    amended = anonymous.post(f"/api/reports/{rid}/review", json={"action": "amend", "reason": "QT remeasured"},
                             headers=headers)
    assert amended.status_code == 200 and amended.json()["status"] == "amended"
    fhir = anonymous.get(f"/fhir/DiagnosticReport/{rid}").json()
    assert fhir["status"] == "amended" and "QT remeasured" in fhir["conclusion"]
    assert "Amended by dr-amend" in anonymous.get(f"/reports/{rid}").text


def test_a_rejected_drill_report_never_becomes_a_training_label(anonymous: TestClient, seeded: Seeded) -> None:
    csrf = _clinician(anonymous, "dr-drill")
    rid, headers = seeded.drill_report, {"x-csrf-token": csrf}
    assert anonymous.post(f"/api/reports/{rid}/review", json={"action": "reject", "verdict": "false_alarm"},
                          headers=headers).status_code == 409  # the reason is required
    done = anonymous.post(f"/api/reports/{rid}/review", json={"action": "reject", "reason": "artefact",
                                                             "verdict": "false_alarm"}, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "rejected"
    assert anonymous.get(f"/fhir/DiagnosticReport/{rid}").json()["status"] == "entered-in-error"
    with anonymous.app.state.sessions() as session:  # type: ignore[attr-defined]
        assert session.scalars(select(Label).where(Label.report_id == rid)).all() == []


def test_reports_outside_the_clinicians_sites_cannot_be_signed(anonymous: TestClient, seeded: Seeded) -> None:
    csrf = _clinician(anonymous, "dr-far", ["another-site"])
    response = anonymous.post(f"/api/reports/{seeded.clinical_report}/review", json={"action": "sign"},
                              headers={"x-csrf-token": csrf})
    assert response.status_code == 404


def test_the_cloud_service_publishes_each_label_once_to_the_device(
        anonymous: TestClient, seeded: Seeded, settings: Settings) -> None:
    csrf = _clinician(anonymous, "dr-label")
    anonymous.post(f"/api/reports/{seeded.clinical_report}/review", json={"action": "sign", "verdict": "uncertain"},
                   headers={"x-csrf-token": csrf})
    bus = InMemoryBus()
    service = CloudService(settings, bus.transport("cloud"), enqueue=lambda _j: None, loop_interval_s=None,
                           ingest_group=None)
    service.start()
    try:
        assert service.publish_labels() == 1 and service.publish_labels() == 0
    finally:
        service.stop()
    sent = [(t, json.loads(p)) for t, p, *_ in bus.published if t.endswith("/label")]
    assert len(sent) == 1
    topic, message = sent[0]
    assert topic == topics.label(topic.split("/")[2], message["patient_id"], "watch-1")  # to the watch that alerted
    assert message["type"] == "label" and message["drill"] is False
    assert message["payload"]["verdict"] == "uncertain" and message["payload"]["alert_id"] == seeded.clinical_alert
