"""Dialect-aware `INSERT … ON CONFLICT DO NOTHING`: races on unique keys end in no-ops, not exceptions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert one row unless a unique constraint already holds it; True when the row was inserted.

    Uses RETURNING rather than `rowcount`, which some drivers report as -1 for this statement.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"cloud DB dialect {dialect!r} is not supported (sqlite, postgresql)")
    key = next(iter(table.primary_key.columns))
    return session.execute(stmt.returning(key)).first() is not None
