"""/admin/users: admins add, disable and enable accounts with the CLI's rules; every act audited."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.cloud_expert.web.conftest import PASSWORD, add_account
from tests.cloud_expert.web.signin import csrf_of, sign_in


def test_an_admin_manages_accounts_in_the_browser_pages(client: TestClient) -> None:
    csrf = csrf_of(client.get("/admin/users").text)
    added = client.post("/admin/users", data={"csrf_token": csrf, "username": "dr-new", "role": "clinician",
                                              "sites": "home-1, home-2", "password": PASSWORD},
                        follow_redirects=False)
    assert added.status_code == 303
    page = client.get("/admin/users").text
    assert "dr-new" in page and "home-1,home-2" in page
    weak = client.post("/admin/users", data={"csrf_token": csrf, "username": "dr-weak", "role": "clinician",
                                             "password": "short"})
    assert weak.status_code == 409 and "at least 12 characters" in weak.text
    assert client.post("/admin/users", data={"username": "x", "role": "admin", "password": PASSWORD}).status_code == 403
    assert client.post("/admin/users/dr-new/disable", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    assert client.post("/admin/users/admin-1/disable", data={"csrf_token": csrf}).status_code == 409  # not oneself
    audit = [(e["username"], e["action"], e["target"]) for e in client.get("/api/audit").json()]
    assert ("admin-1", "user_added", "dr-new") in audit and ("admin-1", "user_disabled", "dr-new") in audit
    other = TestClient(client.app)
    assert sign_in(other, "dr-new", PASSWORD).status_code == 401  # disabled
    assert client.post("/admin/users/dr-new/enable", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    assert sign_in(other, "dr-new", PASSWORD).status_code == 303


def test_only_admins_reach_the_accounts_page(anonymous: TestClient) -> None:
    add_account(anonymous, "dr-plain", "clinician")
    assert sign_in(anonymous, "dr-plain", PASSWORD).status_code == 303
    assert anonymous.get("/admin/users").status_code == 403
