"""Drills from the dashboard: an operator starts one on the real broker (against the scripted stand-in of
tests/cardiomesh/test_drill.py), follows its hops, and finds it in the site's drill history."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from shared.settings import Settings
from tests.cardiomesh.test_drill import scripted_system
from tests.cloud_expert.web.conftest import PASSWORD, add_account
from tests.cloud_expert.web.signin import csrf_of, sign_in


def _operator(client: TestClient, name: str, sites: list[str] | None = None) -> str:
    add_account(client, name, "operator", sites)
    client.cookies.clear()
    assert sign_in(client, name, PASSWORD).status_code == 303
    return csrf_of(client.get("/").text)


def test_an_operator_runs_a_drill_from_the_dashboard_and_follows_its_hops(
        anonymous: TestClient, mosquitto: tuple[str, int], unique: str) -> None:
    host, port = mosquitto
    site = f"dw{unique}"
    anonymous.app.state.settings = anonymous.app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"mqtt_url": f"mqtt://{host}:{port}"})
    csrf = _operator(anonymous, "op-1", [site])
    assert "Start drill" in anonymous.get("/drills").text
    refused = anonymous.post("/api/drills", json={"scenario": "vt", "site": "not-mine"},
                             headers={"x-csrf-token": csrf})
    assert refused.status_code == 409 and "may not drill" in refused.json()["detail"]
    with scripted_system(Settings(site=site, mqtt_url=f"mqtt://{host}:{port}"), [("wide_complex_run", "emergency",
                                                                                  0.5)]):
        started = anonymous.post("/drills", data={"csrf_token": csrf, "scenario": "vt", "site": site},
                                 follow_redirects=False)
        assert started.status_code == 303
        run_id = started.headers["location"].rsplit("/", 1)[-1]
        assert "DRILL" in anonymous.get(f"/drills/{run_id}").text
        deadline = time.monotonic() + 40
        run = anonymous.get(f"/api/drills/{run_id}").json()
        while run["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            run = anonymous.get(f"/api/drills/{run_id}").json()
    # the stand-in plays no edge responses or initial triage: those service levels are missed, and say so;
    assert run["status"] == "failed", run
    # …and the stand-in's report never reaches the dashboard's database: the dashboard, which looked, says so
    assert run["error"] == ("SLO missed: detection → edge response, detection → initial triage, "
                            "report → on the dashboard")
    text = "\n".join(run["lines"])
    for hop in ("drill requested", "watch alert", "edge escalation", "report rendered", "service levels:",
                "PASS  escalation → report rendered"):
        assert hop in text, text
    assert len(run["report_urls"]) == 1 and run["requested_by"] == "op-1"
    assert [r["id"] for r in anonymous.get("/api/drills").json()] == [run_id]  # the site's history
    _operator(anonymous, "op-other", ["elsewhere"])
    assert anonymous.get(f"/api/drills/{run_id}").status_code == 404 and anonymous.get("/api/drills").json() == []


def test_only_operators_and_admins_start_drills(anonymous: TestClient) -> None:
    add_account(anonymous, "dr-nodrill", "clinician")
    assert sign_in(anonymous, "dr-nodrill", PASSWORD).status_code == 303
    csrf = csrf_of(anonymous.get("/").text)
    assert anonymous.get("/drills").status_code == 403
    assert anonymous.post("/api/drills", json={"scenario": "vt", "site": "s"},
                          headers={"x-csrf-token": csrf}).status_code == 403
