"""Every command teaches with --help; bad input is a clear one-line error, not a traceback."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardiomesh.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["demo"], ["watch"], ["phone"], ["edge"], ["cloud"], ["worker"], ["web"],
                                     ["drill"], ["drill", "run"], ["dead-letters"], ["dead-letters", "list"],
                                     ["dead-letters", "replay"], ["metrics"], ["provision"],
                                     ["db"], ["db", "rotate-keys"], ["patient"], ["patient", "erase"],
                                     ["fl"], ["fl", "run"], ["fl", "additive"]])
def test_help_everywhere(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_drill_scenario_is_a_clear_error() -> None:
    result = runner.invoke(app, ["drill", "run", "--scenario", "zombie"])
    assert result.exit_code == 1
    assert "unknown scenario" in result.output


def test_an_unknown_additive_feature_set_is_a_clear_error() -> None:
    result = runner.invoke(app, ["fl", "additive", "--features", "everything"])
    assert result.exit_code == 1
    assert "--features is one of named, all" in result.output


def test_watch_with_missing_record_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["watch", "--record", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert "not found" in result.output


def test_db_keygen_makes_a_key_rotate_needs_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud_expert.db import encryption
    from shared.settings import get_settings

    key = runner.invoke(app, ["db", "keygen"]).output.strip()
    encryption.configure(key)  # a valid Fernet key
    encryption.configure(None)
    monkeypatch.setenv("CARDIOMESH_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    get_settings.cache_clear()
    try:
        assert "unset" in runner.invoke(app, ["db", "rotate-keys"]).output
        monkeypatch.setenv("CARDIOMESH_DATA_KEYS", key)
        get_settings.cache_clear()
        done = runner.invoke(app, ["db", "rotate-keys"])
        assert done.exit_code == 0 and "re-encrypted 0 episode(s) and 0 report(s)" in done.output, done.output
    finally:
        encryption.configure(None)
        get_settings.cache_clear()


def test_dead_letters_are_listed_and_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cardiomesh.runtime import dead_letter_path
    from shared.settings import Settings, get_settings
    from shared.transport import DeadLetterStore

    monkeypatch.setenv("CARDIOMESH_STATE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        store = DeadLetterStore(dead_letter_path(Settings(), "cloud-ingest"), max_attempts=2)
        store.add("cm/v1/s/p/cloud/escalation", b"{}", "OperationalError: server closed the connection", attempts=2)
        store.close()
        listed = runner.invoke(app, ["dead-letters", "list"])
        assert listed.exit_code == 0, listed.output
        assert "cloud-ingest  #1  parked" in listed.output and "OperationalError" in listed.output
        assert "1 kept message(s)" in listed.output
        replayed = runner.invoke(app, ["dead-letters", "replay", "--client", "cloud-ingest"])
        assert replayed.exit_code == 0 and "1 message(s) due for retry" in replayed.output
        assert "waiting" in runner.invoke(app, ["dead-letters", "list"]).output
        missing = runner.invoke(app, ["dead-letters", "list", "--client", "nobody"])
        assert missing.exit_code == 1 and "no dead-letter store" in missing.output
        assert runner.invoke(app, ["dead-letters", "replay", "--id", "1"]).exit_code == 1
    finally:
        get_settings.cache_clear()


def test_metrics_lists_what_components_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.metrics import Counters, MetricsFile, metrics_path
    from shared.settings import get_settings

    monkeypatch.setenv("CARDIOMESH_STATE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert "no metrics yet" in runner.invoke(app, ["metrics"]).output
        counters = Counters()
        counters.inc("rejected.command_bad_signature", 2)
        counters.inc("duplicate.alert")
        MetricsFile(counters, "edge-edge-1", metrics_path(tmp_path, "edge-edge-1")).write()
        out = runner.invoke(app, ["metrics"]).output
        assert "edge-edge-1" in out and "rejected command_bad_signature" in out and "duplicate.alert" in out
    finally:
        get_settings.cache_clear()


def test_a_provisioned_deployment_refuses_the_demo_pseudonym_key(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import get_settings

    monkeypatch.setenv("CARDIOMESH_MQTT_CREDENTIALS_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        for command in (["edge"], ["cloud"], ["phone"], ["watch", "--synthetic"], ["web"], ["worker"]):
            result = runner.invoke(app, command)
            assert result.exit_code == 1 and "CARDIOMESH_PSEUDONYM_KEY is the demo key" in result.output, command
        monkeypatch.setenv("CARDIOMESH_PSEUDONYM_KEY", "a-site-secret")
        get_settings.cache_clear()
        for command in (["cloud"], ["web"], ["worker"]):  # the cloud also refuses to store strips in clear
            result = runner.invoke(app, command)
            assert result.exit_code == 1 and "CARDIOMESH_DATA_KEYS is unset" in result.output, command
    finally:
        get_settings.cache_clear()
