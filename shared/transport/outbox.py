"""A durable SQLite outbox: a device writes here first, and a row leaves only once the broker acks it.

Rows that were still waiting when the process died are sent again on the next start; consumers dedupe
by message id, so a resend is harmless and a loss is not possible.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.sqlite import open_local_db


@dataclass(frozen=True, slots=True)
class OutboxRow:
    row_id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Outbox:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = open_local_db(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, created REAL NOT NULL)"
        )

    def add(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), time.time()),
            )
            return int(cur.lastrowid or 0)

    def remove(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def pending(self) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute("SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id").fetchall()
        return [OutboxRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
