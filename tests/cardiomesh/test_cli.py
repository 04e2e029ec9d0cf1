"""Every command teaches with --help; bad input is a clear one-line error, not a traceback."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cardiomesh.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["demo"], ["watch"], ["phone"], ["edge"], ["cloud"], ["worker"], ["web"],
                                     ["drill"], ["drill", "run"]])
def test_help_everywhere(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_drill_scenario_is_a_clear_error() -> None:
    result = runner.invoke(app, ["drill", "run", "--scenario", "zombie"])
    assert result.exit_code == 1
    assert "unknown scenario" in result.output


def test_watch_with_missing_record_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["watch", "--record", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert "not found" in result.output
