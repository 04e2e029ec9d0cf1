"""One consistent view for a page built from several queries.

PostgreSQL's default READ COMMITTED gives each statement its own snapshot, and Python's sqlite3 opens no
transaction for a SELECT: a page that reads a patient's devices, then their heart-rate trend, could show an
edge summary's trend without the device states that came in the same commit (seen under a loaded CI run).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def read_one_snapshot(session: Session) -> None:
    """From here to the next commit, every read sees the database as it was at the first one. Ends the
    transaction in progress (committing it) so that the new one can start with its own isolation."""
    if session.in_transaction():
        session.commit()
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:  # SQLite (WAL): an explicit transaction reads one snapshot, from its first read on
        session.execute(text("BEGIN"))
