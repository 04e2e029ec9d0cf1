"""Cloud fixtures: a migrated SQLite file DB, and a migrated PostgreSQL schema of its own per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import make_engine, make_session_factory, upgrade_to_head


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture
def pg_schema_url(postgres_url: str, unique: str) -> Iterator[str]:
    """A migrated, private PostgreSQL schema (search_path in the URL); dropped afterwards."""
    schema = f"cm_test_{unique}"
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        upgrade_to_head(rendered)
        yield rendered
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _sessions(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    yield from _sessions(sqlite_url)


@pytest.fixture
def pg_sessions(pg_schema_url: str) -> Iterator[sessionmaker[Session]]:
    yield from _sessions(pg_schema_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest) -> sessionmaker[Session]:
    """The same test on both supported databases."""
    name = "sqlite_sessions" if request.param == "sqlite" else "pg_sessions"
    return request.getfixturevalue(name)
