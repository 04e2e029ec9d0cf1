"""`upgrade_to_head(url)`: every cloud process (ingest, worker, web) calls it at start.

Concurrent starts are serialised: PostgreSQL by a transaction-scoped advisory lock (the upgrade runs
inside that transaction, so the second process sees the finished schema), SQLite by an exclusive file
lock beside the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cloud_expert.db.engine import make_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Arbitrary constant key of the PostgreSQL advisory lock guarding schema upgrades ("CMCLOUD1").
_PG_LOCK_KEY = 0x434D434C4F554431


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic config built in code (no ini needed), pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def _sqlite_file_lock(database: str) -> Iterator[None]:
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_to_head(url: str) -> None:
    """Bring the schema at `url` to the newest migration; safe to call from many processes at once."""
    parsed = make_url(url)
    engine = make_engine(url, poolclass=NullPool)
    try:
        if parsed.get_backend_name() == "postgresql":
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
                command.upgrade(alembic_config(connection), "head")
                connection.commit()
        else:
            with _sqlite_file_lock(parsed.database or ""), engine.connect() as connection:
                command.upgrade(alembic_config(connection), "head")
                connection.commit()
    finally:
        engine.dispose()
    log.debug("schema at head", extra={"backend": parsed.get_backend_name()})
