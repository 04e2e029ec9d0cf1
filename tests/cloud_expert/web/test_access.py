"""Who may see what: every route walked unauthenticated and as each role, site scoping, CSRF, session
fixation, the sign-in lockout, passwords never kept or logged in clear, and the audit trail."""

from __future__ import annotations

import logging

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.routing import Route

from cloud_expert.accounts import LOCKOUT_FAILURES, audit_entries
from cloud_expert.db import AuditEntry, User, WebSession
from tests.cloud_expert.web.conftest import PASSWORD, Seeded, add_account
from tests.cloud_expert.web.signin import csrf_of, sign_in

PUBLIC = {"/login", "/healthz", "/docs", "/favicon.ico", "/openapi.json"}
ADMIN_ONLY = {"/admin/audit", "/admin/users", "/api/audit", "/api/audit.csv"}


def _paths(client: TestClient, seeded: Seeded) -> list[str]:
    """Every GET route of the app, its path parameters filled with the clinical episode's real ids."""

    def fill(path: str) -> str:
        return (path.replace("{report_id}", seeded.clinical_report).replace("{alert_id}", seeded.clinical_alert)
                .replace("{patient_id}", seeded.patient_id).replace("{run_id}", "no-such-drill"))

    found: list[str] = []
    routes = list(client.app.routes)  # type: ignore[attr-defined]
    while routes:
        route = routes.pop(0)
        inner = getattr(route, "original_router", None)  # an included router: its own routes
        if inner is not None:
            routes.extend(inner.routes)
        elif isinstance(route, APIRoute | Route) and "GET" in (route.methods or set()):
            found.append(fill(route.path))
    schema = {p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops}
    assert {fill(p) for p in schema} <= set(found)  # every API route walked
    assert {"/login", "/admin/audit", "/"} <= set(found) and len(found) >= 14, found
    return found


def _get(client: TestClient, path: str, accept: str = "application/json") -> tuple[int, dict[str, str]]:
    """Status and headers of a GET, without reading the body: the live queue's event stream never ends."""
    with client.stream("GET", path, headers={"accept": accept}, follow_redirects=False) as response:
        return response.status_code, dict(response.headers)


def _as(anonymous: TestClient, username: str, role: str, sites: list[str] | None = None) -> TestClient:
    add_account(anonymous, username, role, sites)
    anonymous.cookies.clear()
    assert sign_in(anonymous, username, PASSWORD).status_code == 303
    return anonymous


def test_every_route_needs_a_signed_in_user_except_sign_in_health_and_the_schema(
        anonymous: TestClient, seeded: Seeded) -> None:
    for path in _paths(anonymous, seeded):
        api, api_headers = _get(anonymous, path)
        page, page_headers = _get(anonymous, path, accept="text/html")
        if path in PUBLIC:
            assert api == 200, path
            continue
        assert api == 401 and api_headers["www-authenticate"] == "Bearer", path
        if path.startswith(("/api/", "/fhir/")):
            assert page == 401, path
        else:  # a browser is sent to sign in, and comes back to where it was going
            assert page == 303 and page_headers["location"].startswith("/login?next=%2F"), path
    assert anonymous.get("/", headers={"authorization": "Bearer forged"}).status_code == 401


@pytest.mark.parametrize("role", ["clinician", "technician", "operator", "admin"])
def test_each_role_reaches_what_it_may_and_nothing_else(anonymous: TestClient, seeded: Seeded, role: str) -> None:
    client = _as(anonymous, f"u-{role}", role)
    for path in _paths(client, seeded):
        if path in PUBLIC:
            continue
        status, _ = _get(client, path)
        if path in ADMIN_ONLY:
            assert status == (200 if role == "admin" else 403), (role, path)
        elif path.startswith(("/drills", "/api/drills")):  # drills: operators and admins
            assert status == ((404 if "no-such-drill" in path else 200) if role in ("operator", "admin") else 403), (
                role, path)
        elif path.endswith("/review"):  # sign-off: clinicians and admins
            assert status == (200 if role in ("clinician", "admin") else 403), (role, path)
        elif (path.startswith(("/patients/", "/api/patients/"))  # the patient has a drill: an operator sees it
              or (seeded.clinical_report not in path and seeded.clinical_alert not in path)):
            assert status == 200, (role, path)
        else:  # a clinical report: an operator works with drills only, to them it does not exist
            assert status == (404 if role == "operator" else 200), (role, path)
    drill = client.get(f"/reports/{seeded.drill_report}")
    assert drill.status_code == 200
    listed = {a["alert_id"] for a in client.get("/api/alerts").json()}
    assert (seeded.clinical_alert in listed) == (role != "operator") and seeded.drill_alert in listed


def test_a_user_sees_only_their_sites(anonymous: TestClient, seeded: Seeded) -> None:
    client = _as(anonymous, "elsewhere", "clinician", ["some-other-site"])
    assert client.get("/api/alerts").json() == [] and client.get("/api/reports").json() == []
    for path in (f"/reports/{seeded.clinical_report}", f"/api/reports/{seeded.clinical_report}",
                 f"/reports/{seeded.clinical_report}.pdf", f"/fhir/DiagnosticReport/{seeded.clinical_report}"):
        assert client.get(path).status_code == 404, path  # not 403: its existence is not disclosed either


def test_state_changes_need_the_csrf_token_and_sign_in_needs_the_form_token(anonymous: TestClient) -> None:
    client = _as(anonymous, "dr-csrf", "clinician")
    token = csrf_of(client.get("/").text)
    assert client.post("/logout").status_code == 403  # a cross-site form: the cookie goes, the token cannot
    assert client.post("/logout", data={"csrf_token": "guess"}).status_code == 403
    assert client.get("/api/alerts").status_code == 200  # still signed in
    done = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303 and client.get("/api/alerts").status_code == 401
    forged = client.post("/login", data={"username": "dr-csrf", "password": PASSWORD, "csrf_token": "x"})
    assert forged.status_code == 403 and client.get("/api/alerts").status_code == 401


def test_a_session_planted_before_sign_in_is_never_the_one_after(anonymous: TestClient) -> None:
    add_account(anonymous, "dr-fix", "clinician")
    planted = "planted-by-an-attacker"
    anonymous.cookies.set("cm_session", planted)
    assert anonymous.get("/api/alerts").status_code == 401
    issued = sign_in(anonymous, "dr-fix", PASSWORD).cookies.get("cm_session")
    assert issued and issued != planted  # sign-in mints its own token, whatever the browser held
    anonymous.cookies.clear()
    again = sign_in(anonymous, "dr-fix", PASSWORD).cookies.get("cm_session")
    assert again and again != issued  # a new token at every sign-in
    with anonymous.app.state.sessions() as session:  # type: ignore[attr-defined]
        stored = set(session.scalars(select(WebSession.token_hash)).all())
    assert len(stored) == 2 and not {issued, again} & stored  # only the tokens' hashes are kept


def test_failed_sign_ins_lock_the_account_for_a_while(anonymous: TestClient) -> None:
    add_account(anonymous, "dr-lock", "clinician")
    for _ in range(LOCKOUT_FAILURES):
        assert sign_in(anonymous, "dr-lock", "wrong password!").status_code == 401
    assert sign_in(anonymous, "dr-lock", PASSWORD).status_code == 429  # even the right one, for now
    assert sign_in(anonymous, "nobody-at-all", PASSWORD).status_code == 401  # unknown: the same answer as wrong
    with anonymous.app.state.sessions() as session:  # type: ignore[attr-defined]
        actions = [e.action for e in audit_entries(session, limit=50)]
    assert actions.count("sign_in_failed") == LOCKOUT_FAILURES + 1 and "sign_in_locked" in actions


def test_passwords_are_never_kept_or_logged_in_clear(anonymous: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    add_account(anonymous, "dr-hash", "clinician")
    sign_in(anonymous, "dr-hash", PASSWORD)
    sign_in(anonymous, "dr-hash", PASSWORD + "x")
    with anonymous.app.state.sessions() as session:  # type: ignore[attr-defined]
        user = session.scalar(select(User).where(User.username == "dr-hash"))
        assert user is not None and user.password_hash.startswith("$argon2id$")
        rows = session.scalars(select(AuditEntry)).all()
        assert all(PASSWORD not in f"{r.target} {r.detail}" for r in rows)
    assert PASSWORD not in caplog.text


def test_views_are_audited_and_admins_read_and_export_the_log(anonymous: TestClient, seeded: Seeded) -> None:
    reader = _as(anonymous, "dr-audit", "clinician")
    reader.get(f"/reports/{seeded.clinical_report}")
    reader.get(f"/reports/{seeded.clinical_report}.pdf")
    reader.get(f"/fhir/DiagnosticReport/{seeded.clinical_report}")
    assert reader.get("/api/audit").status_code == 403
    admin = _as(anonymous, "boss", "admin")
    log = admin.get("/api/audit").json()
    views = [(e["username"], e["target"], e["detail"]) for e in log if e["action"] == "viewed_report"]
    assert {("dr-audit", seeded.clinical_report, form) for form in ("html", "pdf", "fhir")} <= set(views)
    assert any(e["action"] == "sign_in" and e["username"] == "dr-audit" for e in log)
    exported = admin.get("/api/audit.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert f"dr-audit,viewed_report,{seeded.clinical_report},pdf" in exported.text
    page = admin.get("/admin/audit")
    assert page.status_code == 200 and "viewed_report" in page.text


def test_changes_need_a_signed_in_user_with_the_right_role(anonymous: TestClient, seeded: Seeded) -> None:
    review = f"/api/reports/{seeded.clinical_report}/review"
    body = {"action": "sign", "verdict": "true_alarm"}
    assert anonymous.post(review, json=body).status_code == 401
    assert anonymous.post(f"/reports/{seeded.clinical_report}/review", data={"action": "sign"},
                          follow_redirects=False).status_code == 401
    for role in ("technician", "operator"):
        client = _as(anonymous, f"no-{role}", role)
        token = csrf_of(client.get("/").text)
        assert client.post(review, json=body, headers={"x-csrf-token": token}).status_code == 403, role
        assert client.get(f"/reports/{seeded.clinical_report}/review").status_code == 403, role
