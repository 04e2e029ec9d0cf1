"""`cardiomesh user`: accounts from the command line, and an API token that works where a browser session does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cardiomesh.cli import app
from cloud_expert.web import create_app
from shared.settings import get_settings


@pytest.fixture
def cloud_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    monkeypatch.setenv("CARDIOMESH_DATABASE_URL", url)
    monkeypatch.setenv("CARDIOMESH_STATE_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_accounts_from_the_cli_and_a_token_for_scripts(cloud_db: str) -> None:
    runner = CliRunner()
    added = runner.invoke(app, ["user", "add", "dr-lee", "--role", "clinician", "--site", "home-1",
                                "--password-stdin"], input="a long enough password\n")
    assert added.exit_code == 0, added.output
    assert "user dr-lee (clinician) added, sites: home-1" in added.output
    short = runner.invoke(app, ["user", "add", "dr-x", "--role", "clinician", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    bad_role = runner.invoke(app, ["user", "add", "dr-y", "--role", "janitor", "--password-stdin"],
                             input="a long enough password\n")
    assert bad_role.exit_code == 1 and "role must be one of" in bad_role.output
    listed = runner.invoke(app, ["user", "list"])
    assert "dr-lee" in listed.output and "home-1" in listed.output and "active" in listed.output
    issued = runner.invoke(app, ["user", "token", "dr-lee"])
    assert issued.exit_code == 0
    token = issued.stdout.strip().splitlines()[-1]
    web = create_app(get_settings())
    with TestClient(web) as client:
        assert client.get("/api/alerts").status_code == 401
        assert client.get("/api/alerts", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert runner.invoke(app, ["user", "disable", "dr-lee"]).exit_code == 0  # signed out everywhere
        assert client.get("/api/alerts", headers={"authorization": f"Bearer {token}"}).status_code == 401
        assert runner.invoke(app, ["user", "token", "dr-lee"]).exit_code == 1
        assert runner.invoke(app, ["user", "enable", "dr-lee"]).exit_code == 0
        assert runner.invoke(app, ["user", "disable", "nobody"]).exit_code == 1
    web.state.engine.dispose()
