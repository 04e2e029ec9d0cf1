"""The patient view's devices and heart-rate trend, the strip viewer's full disclosure, and users limited to
the patients assigned to them."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.ingest import store_escalation
from cloud_expert.telemetry import store_disclosure, store_summary
from shared.messages import (
    DeviceState,
    DisclosureMessage,
    DisclosurePayload,
    EcgStrip,
    EscalationMessage,
    HrMinute,
    SummaryMessage,
    SummaryPayload,
    utcnow,
)
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.web.conftest import PASSWORD, add_account
from tests.cloud_expert.web.signin import sign_in


def _signed_in(client: TestClient, name: str, role: str = "clinician", sites: list[str] | None = None,
               patients: list[str] | None = None) -> None:
    add_account(client, name, role, sites, patients=patients)
    client.cookies.clear()
    assert sign_in(client, name, PASSWORD).status_code == 303


def _sessions(client: TestClient) -> sessionmaker[Session]:
    return client.app.state.sessions  # type: ignore[attr-defined]


def _escalated(client: TestClient, site: str, patient: str) -> EscalationMessage:
    message = make_escalation(site=site, patient_id=patient, level="urgent")
    with _sessions(client)() as session:
        store_escalation(session, message, utcnow())
        session.commit()
    return message


def test_the_patient_view_shows_devices_with_presence_and_the_vitals_trend(anonymous: TestClient,
                                                                           unique: str) -> None:
    site, patient = f"pv{unique}", f"pt-pv{unique}"
    _escalated(anonymous, site, patient)
    now = utcnow().replace(second=0, microsecond=0)
    minutes = [HrMinute(device_id="watch-1", minute=now - timedelta(minutes=90 - i), n=60, hr_mean=70.0 + i % 7,
                        hr_min=62.0, hr_max=95.0, signal_ok_share=1.0) for i in range(80)]
    with _sessions(anonymous)() as session:
        store_summary(session, site, SummaryMessage(source="edge-1", patient_id=patient, payload=SummaryPayload(
            devices=[DeviceState(device_id="watch-1", role="watch", status="online", last_seen=now),
                     DeviceState(device_id="phone-1", role="phone", status="offline", last_seen=now)],
            minutes=minutes)), utcnow())
        session.commit()
    _signed_in(anonymous, f"dr-pv{unique}")
    story = anonymous.get(f"/api/patients/{patient}?range=6h").json()
    assert [(d["device_id"], d["status"]) for d in story["devices"]] == [("phone-1", "offline"), ("watch-1", "online")]
    assert story["devices"][1]["last_alert"] is not None and story["trend_bucket_s"] == 60
    assert len(story["trend"]) == 80 and story["trend"][0]["hr_max"] == 95.0
    day = anonymous.get(f"/api/patients/{patient}?range=24h").json()["trend"]
    assert sum(p["n"] for p in day) == 80 * 60 and len(day) <= 17  # 5-minute buckets
    page = anonymous.get(f"/patients/{patient}?range=6h")
    assert page.status_code == 200 and "<polygon" in page.text and "<polyline" in page.text and "offline" in page.text
    assert anonymous.get(f"/api/patients/{patient}?range=1y").status_code == 422
    _signed_in(anonymous, f"op-pv{unique}", "operator")  # an operator never sees clinical telemetry
    assert anonymous.get(f"/api/patients/{patient}").status_code == 404


def test_the_strip_viewer_shows_the_after_part_seamless_with_the_alert_strip(anonymous: TestClient,
                                                                             unique: str) -> None:
    site, patient = f"sv{unique}", f"pt-sv{unique}"
    escalation = _escalated(anonymous, site, patient)
    strip = escalation.payload.alert.payload.strip
    end = strip.t0_s + strip.duration_s
    _signed_in(anonymous, f"dr-sv{unique}")
    before = anonymous.get(f"/api/episodes/{escalation.payload.alert_id}/strip").json()
    assert before["after"] == [] and before["after_complete"] is None
    status_url = f"/api/episodes/{escalation.payload.alert_id}/disclosure"  # what an open strip page asks
    assert anonymous.get(status_url).json() == {"segments": 0, "complete": None}
    beats = np.tile(np.r_[np.zeros(150), np.hanning(20) * 1.2, np.zeros(80)], 12)  # 12 spikes at 1 Hz (250 Hz)
    with _sessions(anonymous)() as session:
        store_disclosure(session, site, DisclosureMessage(
            source="edge-1", patient_id=patient, trace_id=escalation.trace_id, payload=DisclosurePayload(
                alert_id=escalation.payload.alert_id, device_id="watch-1", expected_s=30.0, complete=True,
                segments=[EcgStrip.from_mv(beats, fs=strip.fs, t0_s=end)])), utcnow())
        session.commit()
    assert anonymous.get(status_url).json() == {"segments": 1, "complete": True}
    data = anonymous.get(f"/api/episodes/{escalation.payload.alert_id}/strip").json()
    [after] = data["after"]
    assert data["after_complete"] is True and after["offset_s"] == round(strip.duration_s, 4)
    assert len(after["samples_mv"]) == len(beats) and 10 <= len(after["beats_s"]) <= 12
    page = anonymous.get(f"/episodes/{escalation.payload.alert_id}/strip")
    assert "streamed after the alert" in page.text


def test_a_user_assigned_patients_sees_only_them(anonymous: TestClient, unique: str) -> None:
    site = f"as{unique}"
    mine, other = _escalated(anonymous, site, f"pt-mine{unique}"), _escalated(anonymous, site, f"pt-other{unique}")
    _signed_in(anonymous, f"dr-as{unique}", sites=[site], patients=[f"pt-mine{unique}"])
    rows = anonymous.get(f"/api/queue?site={site}").json()["rows"]
    assert [r["patient_id"] for r in rows] == [f"pt-mine{unique}"]
    assert anonymous.get(f"/api/patients/pt-mine{unique}").status_code == 200
    for url in (f"/api/patients/pt-other{unique}", f"/api/episodes/{other.payload.alert_id}/strip",
                f"/api/episodes/{other.payload.alert_id}/disclosure"):
        assert anonymous.get(url).status_code == 404, url
    assert anonymous.get(f"/api/episodes/{mine.payload.alert_id}/strip").status_code == 200


def test_assigning_patients_from_the_admin_page_is_audited_and_takes_effect(anonymous: TestClient,
                                                                           unique: str) -> None:
    from tests.cloud_expert.web.signin import csrf_of

    site = f"ap{unique}"
    _escalated(anonymous, site, f"pt-a{unique}")
    _escalated(anonymous, site, f"pt-b{unique}")
    _signed_in(anonymous, f"admin-ap{unique}", "admin")
    csrf = csrf_of(anonymous.get("/admin/users").text)
    add_account(anonymous, f"dr-ap{unique}", "clinician", [site])
    answer = anonymous.post(f"/admin/users/dr-ap{unique}/patients", data={"patients": f"pt-b{unique}",
                                                                          "csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    assert anonymous.post(f"/admin/users/dr-ap{unique}/patients", data={"patients": "bad id!", "csrf_token": csrf},
                          follow_redirects=False).status_code == 422  # refused, said on the page
    audit = anonymous.get("/api/audit").json()
    assert ("user_patients", f"dr-ap{unique}") in [(e["action"], e["target"]) for e in audit]
    anonymous.cookies.clear()
    assert sign_in(anonymous, f"dr-ap{unique}", PASSWORD).status_code == 303
    assert [r["patient_id"] for r in anonymous.get(f"/api/queue?site={site}").json()["rows"]] == [f"pt-b{unique}"]


def test_an_episodes_hops_export_as_an_opentelemetry_trace(anonymous: TestClient, unique: str) -> None:
    escalation = _escalated(anonymous, f"tr{unique}", f"pt-tr{unique}")
    _signed_in(anonymous, f"dr-tr{unique}")
    body = anonymous.get(f"/api/episodes/{escalation.payload.alert_id}/trace").json()
    [resource] = body["resourceSpans"]
    spans = resource["scopeSpans"][0]["spans"]
    root, *hops = spans
    assert {s["traceId"] for s in spans} == {escalation.trace_id}  # uuid4 hex: already an OTel trace id
    assert all(s["parentSpanId"] == root["spanId"] for s in hops) and len({s["spanId"] for s in spans}) == len(spans)
    assert [s["name"] for s in hops][-1] == "cloud_ingest"
    assert all(int(s["startTimeUnixNano"]) <= int(s["endTimeUnixNano"]) for s in spans)
    assert f"pt-tr{unique}" not in str(body)  # no patient in a trace
    assert anonymous.get("/api/episodes/nope/trace").status_code == 404
