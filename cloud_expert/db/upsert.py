"""Dialect-aware `INSERT … ON CONFLICT DO NOTHING`: races on unique keys end in no-ops, not exceptions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud_expert.db.models import Base


def insert_ignoring_conflicts(session: Session, model: type[Base], values: dict[str, Any]) -> bool:
    """Insert one row unless a unique constraint already holds it; True when the row was inserted.

    Uses RETURNING rather than `rowcount`, which psycopg reports as -1 for this statement.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"cloud DB dialect {dialect!r} is not supported (sqlite, postgresql)")
    key = inspect(model).primary_key[0]
    return session.execute(stmt.returning(key)).first() is not None
