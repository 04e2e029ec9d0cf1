"""upgrade_to_head: idempotent, and safe when several processes start at once."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import inspect, text

from cloud_expert.db import make_engine, upgrade_to_head

TABLES = {"alembic_version", "episodes", "report_jobs", "reports", "erasures", "users", "web_sessions", "audit_log",
          "report_reviews", "labels"}
HEAD = "0008_telemetry"
REPORT_COLUMNS = {"pdf", "assessment_json", "severity", "signed_at", "signed_by", "review_status", "review_reason"}


def _concurrently(url: str, n: int = 4) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade_to_head(url)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert {c["name"] for c in inspect(engine).get_columns("reports")} >= REPORT_COLUMNS
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    finally:
        engine.dispose()


def test_sqlite_concurrent_starts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'cloud.db'}"
    assert _concurrently(url) == []
    upgrade_to_head(url)  # again: a no-op
    _check(url)


def test_sqlite_wal_mode(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() > 0
    engine.dispose()


def test_postgresql_concurrent_starts(pg_schema_url: str) -> None:
    assert _concurrently(pg_schema_url) == []
    _check(pg_schema_url)
