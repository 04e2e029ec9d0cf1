"""Local SQLite files for device and hub state: WAL, one connection shared across threads (callers lock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_local_db(path: Path | str) -> sqlite3.Connection:
    """WAL with synchronous=NORMAL: a crash keeps every committed row; autocommit, so each statement commits."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db
