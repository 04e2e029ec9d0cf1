"""The triage queue: one row per patient, severity then age, actions recorded, drills apart, pushed live."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.ingest import store_escalation
from shared.messages import utcnow
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.web.conftest import PASSWORD, add_account
from tests.cloud_expert.web.signin import csrf_of, sign_in


def _escalate(sessions: sessionmaker[Session], site: str, patient: str, level: str, *, ago_s: float = 0.0,
              drill: bool = False) -> str:
    with sessions() as session:
        episode, _, _ = store_escalation(session, make_escalation(site=site, patient_id=patient, level=level,
                                                                  drill=drill), utcnow() - timedelta(seconds=ago_s))
        session.commit()
        return episode.id


def _signed_in(anonymous: TestClient, name: str, role: str = "clinician", sites: list[str] | None = None) -> str:
    add_account(anonymous, name, role, sites)
    anonymous.cookies.clear()
    assert sign_in(anonymous, name, PASSWORD).status_code == 303
    return csrf_of(anonymous.get("/").text)


def test_one_row_per_patient_most_severe_first_info_and_drills_on_request(anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    site = f"q{unique}"
    a = [_escalate(sessions, site, "pt-a", level, ago_s=ago) for level, ago in
         (("urgent", 300), ("emergency", 200), ("urgent", 100))]
    b = _escalate(sessions, site, "pt-b", "urgent", ago_s=400)
    _escalate(sessions, site, "pt-c", "info", ago_s=50)
    _escalate(sessions, site, "pt-a", "urgent", ago_s=10, drill=True)
    _signed_in(anonymous, "dr-q")
    rows = anonymous.get(f"/api/queue?site={site}").json()["rows"]
    summary = [(r["patient_id"], r["level"], r["alerts"]) for r in rows]
    assert summary == [("pt-a", "emergency", 3), ("pt-b", "urgent", 1)]
    assert rows[0]["lead_episode"] == a[1] and set(rows[0]["episode_ids"]) == set(a) and rows[1]["lead_episode"] == b
    with_info = anonymous.get(f"/api/queue?site={site}&level=info").json()["rows"]
    assert [r["patient_id"] for r in with_info] == ["pt-c"]
    with_drills = anonymous.get(f"/api/queue?site={site}&drills=true").json()["rows"]
    assert [(r["patient_id"], r["drill"]) for r in with_drills] == [("pt-a", False), ("pt-b", False), ("pt-a", True)]


def test_acknowledge_assign_snooze_resolve_each_recorded(anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    site = f"q{unique}"
    ids = [_escalate(sessions, site, "pt-x", "emergency", ago_s=30)]
    other = _escalate(sessions, site, "pt-y", "urgent")
    csrf = _signed_in(anonymous, "dr-act")
    headers = {"x-csrf-token": csrf}

    def post(**body: object) -> int:
        return anonymous.post("/api/queue/actions", json=body, headers=headers).status_code

    assert anonymous.post("/api/queue/actions", json={"episode_ids": ids, "action": "acknowledge"}).status_code == 403
    assert post(episode_ids=ids, action="acknowledge") == 200
    assert post(episode_ids=ids, action="assign", assignee="dr-b") == 200
    row = anonymous.get(f"/api/queue?site={site}").json()["rows"][0]
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "dr-act" and row["assigned_to"] == "dr-b"
    assert 29 <= row["time_to_ack_s"] < 120
    stats = anonymous.get("/api/queue/stats?hours=1").json()
    assert stats["acknowledged"] >= 1 and 29 <= stats["time_to_ack_s_p50"] < 120 and stats["hours"] == 1
    assert post(episode_ids=[other], action="snooze", minutes=15) == 200
    assert [r["patient_id"] for r in anonymous.get(f"/api/queue?site={site}").json()["rows"]] == ["pt-x"]
    assert post(episode_ids=ids, action="resolve") == 409  # an outcome is required
    assert post(episode_ids=ids, action="resolve", outcome="called the patient; ambulance") == 200
    assert anonymous.get(f"/api/queue?site={site}").json()["rows"] == []
    resolved = anonymous.get(f"/api/queue?site={site}&status=resolved").json()["rows"]
    assert [r["patient_id"] for r in resolved] == ["pt-x"]
    assert post(episode_ids=["no-such-episode"], action="acknowledge") == 404
    _signed_in(anonymous, "boss-q", "admin")
    actions = [(e["action"], e["target"]) for e in anonymous.get("/api/audit").json()]
    for action in ("queue_acknowledge", "queue_assign", "queue_resolve"):
        assert (action, ids[0]) in actions
    assert ("queue_snooze", other) in actions


def test_a_user_sees_and_touches_only_their_sites(anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    episode = _escalate(sessions, f"q{unique}", "pt-z", "emergency")
    csrf = _signed_in(anonymous, "dr-away", sites=["elsewhere"])
    assert anonymous.get(f"/api/queue?site=q{unique}").json()["rows"] == []
    assert anonymous.post("/api/queue/actions", json={"episode_ids": [episode], "action": "acknowledge"},
                          headers={"x-csrf-token": csrf}).status_code == 404


def test_a_new_escalation_is_pushed_to_an_open_queue(anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    _signed_in(anonymous, "dr-live")
    assert "EventSource('/api/queue/events')" in anonymous.get("/queue").text
    got: list[str] = []
    with anonymous.stream("GET", "/api/queue/events") as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        sent_at = time.monotonic()
        threading.Timer(0.3, _escalate, args=(sessions, f"q{unique}", "pt-live", "emergency")).start()
        for line in lines:
            if line.startswith("event:"):
                got.append(line)
                break
        waited = time.monotonic() - sent_at
    assert got == ["event: episode"] and waited < 5.0


def test_the_strip_viewer_gets_the_strip_with_its_beats_and_records_the_view(
        anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    episode = _escalate(sessions, f"q{unique}", "pt-strip", "emergency")
    _signed_in(anonymous, "dr-strip")
    page = anonymous.get(f"/episodes/{episode}/strip")
    assert page.status_code == 200 and "<canvas" in page.text and "Δt" in page.text
    data = anonymous.get(f"/api/episodes/{episode}/strip").json()
    seconds = len(data["samples_mv"]) / data["fs"]
    assert 9.0 <= seconds <= 11.0 and 0.0 <= data["event_s"] <= seconds  # the factory's 10 s strip
    assert len(data["beats_s"]) >= 8 and len(data["ventricular"]) == len(data["beats_s"])
    assert all(0.0 <= t <= seconds for t in data["beats_s"])
    assert anonymous.get("/api/episodes/no-such/strip").status_code == 404
    _signed_in(anonymous, "dr-far-strip", sites=["elsewhere"])
    assert anonymous.get(f"/api/episodes/{episode}/strip").status_code == 404
    _signed_in(anonymous, "boss-strip", "admin")
    assert ("viewed_strip", episode) in [(e["action"], e["target"]) for e in anonymous.get("/api/audit").json()]


def test_the_patient_view_tells_their_story_with_drills_apart(anonymous: TestClient, unique: str) -> None:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    site, patient = f"q{unique}", f"pt-story{unique}"
    for level, ago in (("urgent", 7200), ("emergency", 3600)):
        _escalate(sessions, site, patient, level, ago_s=ago)
    _escalate(sessions, site, patient, "urgent", ago_s=60, drill=True)
    _signed_in(anonymous, "dr-story")
    story = anonymous.get(f"/api/patients/{patient}").json()
    assert [e["level"] for e in story["clinical"]] == ["urgent", "emergency"]  # oldest first
    assert [e["drill"] for e in story["drills"]] == [True] and story["sites"] == [site]
    assert [d["device_id"] for d in story["devices"]] == ["watch-1"]  # seen in episodes only: presence unknown
    assert story["devices"][0]["status"] == "unknown" and story["trend"] == []
    page = anonymous.get(f"/patients/{patient}")
    assert page.status_code == 200 and "No heart rate" in page.text and "Drills" in page.text
    assert anonymous.get("/api/patients/nobody-here").status_code == 404
    _signed_in(anonymous, "op-story", "operator")
    as_operator = anonymous.get(f"/api/patients/{patient}").json()
    assert as_operator["clinical"] == [] and len(as_operator["drills"]) == 1  # an operator: drills only
