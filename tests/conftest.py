"""Shared fixtures: the real services on this machine, and the MIT-BIH data beside the repo.

A test that needs a missing service skips with the reason, except under CI (`CI=true`), where a
missing service fails the run: CI must never go green by skipping the real parts.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from shared.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    if _answers(host, port):
        return
    skip_or_fail(f"{name} is not answering on {host}:{port}", "services must be up")


def skip_or_fail(message: str, needed: str = "data and tools must be present") -> NoReturn:
    """Skip with the reason; under CI fail instead — CI must never go green by skipping the services, data or
    tools the tests are for."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: {needed})")
    pytest.skip(message)


def mosquitto_binary() -> str:
    """The `mosquitto` executable, for tests that start a broker with a configuration of their own."""
    import shutil

    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        skip_or_fail("mosquitto binary not found", "tools must be present")
    return found


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    need_service("Mosquitto", "127.0.0.1", 1883)
    return "127.0.0.1", 1883


@pytest.fixture(scope="session")
def redis_url() -> str:
    need_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    return os.environ.get("CARDIOMESH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def mitdb() -> Path:
    """The MIT-BIH Arrhythmia Database directory, or skip (fail under CI) with the reason."""
    directory = Settings().mitdb_dir
    if directory is None or not (directory / "100.hea").exists():
        skip_or_fail("MIT-BIH data not found: set CARDIOMESH_DATA_DIR to a folder holding mitdb/")
    return directory


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """Undo a CLI test's `shared.logs.configure`: it points the root logger at that test's captured stderr,
    which pytest closes, and later tests' threads would log into a closed file ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def stop_every_started(monkeypatch: pytest.MonkeyPatch, component: type[Any]) -> Iterator[None]:
    """For an autouse fixture: every `component` a test starts is stopped when the test ends. A component's
    background threads (timers, resenders) otherwise outlive the test and act, and log, during later ones."""
    started: list[Any] = []
    start = component.start

    def tracked(self: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(component, "start", tracked)
    yield
    for instance in started:
        instance.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for client ids, sites and topics, so parallel runs never collide."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def settings(tmp_path: Path, unique: str) -> Iterator[Settings]:
    yield Settings(state_dir=tmp_path / "state", site=f"t{unique}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The fault tests' table (`tests/integration/faults.py`) → var/faults.md."""
    from tests.integration.faults import write_table

    write_table()
