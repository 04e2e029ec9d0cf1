"""One consistent view for a page built from several queries.

PostgreSQL's default READ COMMITTED gives each statement its own snapshot, and Python's sqlite3 opens no
transaction for a SELECT: a page that reads a patient's devices, then their heart-rate trend, could show an
edge summary's trend without the device states that came in the same commit (seen under a loaded CI run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session


@contextmanager
def one_snapshot(session: Session) -> Iterator[None]:
    """Inside, every read sees the database as it was at the first one; on the way out the snapshot ends (a
    commit: nothing is written inside). Reads only: on SQLite a snapshot that another connection has written
    past cannot become a write ("database is locked" at once), so the caller writes — its audit row — after.
    The transaction in progress, if any, is committed first, so that the snapshot's own can start."""
    if session.in_transaction():
        session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:  # SQLite (WAL): an explicit transaction reads one snapshot, from its first read on
        session.execute(text("BEGIN"))
    try:
        yield
    finally:
        session.commit()
