"""Dialect-aware `INSERT … ON CONFLICT DO NOTHING`: races on unique keys end in no-ops, not exceptions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud_expert.db.models import Base


def _insert(session: Session, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"cloud DB dialect {dialect!r} is not supported (sqlite, postgresql)")


def upsert(session: Session, model: type[Base], values: dict[str, Any]) -> None:
    """Insert one row, or update every non-key column of the row with its primary key (one statement: two
    writers race to the same end, not to an IntegrityError)."""
    keys = [c.name for c in inspect(model).primary_key]
    stmt = _insert(session, model).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_={
        name: stmt.excluded[name] for name in values if name not in keys}))


def insert_ignoring_conflicts(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert one row unless a unique constraint already holds it; True when the row was inserted.

    Uses RETURNING rather than `rowcount`, which psycopg reports as -1 for this statement.
    """
    stmt = _insert(session, model).values(**values).on_conflict_do_nothing()
    key = inspect(model).primary_key[0]
    return session.execute(stmt.returning(key)).first() is not None
