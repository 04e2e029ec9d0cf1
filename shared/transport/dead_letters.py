"""Messages whose handler failed: kept durably, retried with backoff, parked for an operator, never dropped.

A handler that raises (a database failover, a full disk, a bug) used to be counted and its message
acknowledged: the broker never redelivered it and the effect was lost. Withholding the MQTT ack is no
cure on MQTT 3.1.1 (the broker redelivers only on reconnect, and unacked messages fill its in-flight
window, stalling every later message behind one poisoned one). So the router keeps the message here
*before* the ack, and retries it itself: `attempts` grows, the next try waits `backoff(attempts)`,
and after `max_attempts` the row is parked until an operator replays it (`cardiomesh dead-letters`).

SQLite (one file per component, beside its outbox): it must work when the component's main database
is exactly what failed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.sqlite import open_local_db

WAITING = "waiting"
PARKED = "parked"


def backoff_s(attempts: int) -> float:
    """1, 2, 4, … 60 s: a 30 s database failover is ridden out within a few tries."""
    return float(min(60.0, 2.0 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    row_id: int
    topic: str
    payload: bytes
    error: str
    attempts: int
    state: str
    first_failed: float
    next_try: float


class DeadLetterStore:
    def __init__(self, path: Path | str, *, max_attempts: int = 12) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._db = open_local_db(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
            " payload BLOB NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL, state TEXT NOT NULL,"
            " first_failed REAL NOT NULL, next_try REAL NOT NULL)"
        )

    def add(self, topic: str, payload: bytes, error: str, *, attempts: int = 1, now: float | None = None) -> int:
        now = time.time() if now is None else now
        state = PARKED if attempts >= self.max_attempts else WAITING
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO dead_letters (topic, payload, error, attempts, state, first_failed, next_try)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (topic, payload, error[:2000], attempts, state, now, now + backoff_s(attempts)))
            return int(cur.lastrowid or 0)

    def due(self, now: float | None = None) -> list[DeadLetter]:
        now = time.time() if now is None else now
        return self._select("WHERE state = ? AND next_try <= ? ORDER BY id", (WAITING, now))

    def next_due(self) -> float | None:
        """When the earliest waiting row is due (epoch seconds); None when none waits."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_try) FROM dead_letters WHERE state = ?", (WAITING,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def all(self) -> list[DeadLetter]:
        return self._select("ORDER BY id", ())

    def get(self, row_id: int) -> DeadLetter | None:
        rows = self._select("WHERE id = ?", (row_id,))
        return rows[0] if rows else None

    def failed_again(self, row_id: int, error: str, now: float | None = None) -> DeadLetter | None:
        """One more failed try: wait longer, or park once `max_attempts` is reached."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute("SELECT attempts FROM dead_letters WHERE id = ?", (row_id,)).fetchone()
            if row is None:
                return None
            attempts = int(row[0]) + 1
            state = PARKED if attempts >= self.max_attempts else WAITING
            self._db.execute("UPDATE dead_letters SET attempts = ?, state = ?, error = ?, next_try = ? WHERE id = ?",
                             (attempts, state, error[:2000], now + backoff_s(attempts), row_id))
        return self.get(row_id)

    def release(self, row_id: int | None = None) -> int:
        """Operator replay: parked rows (or one row) become due now, with a fresh attempt budget."""
        where, args = ("WHERE id = ?", (row_id,)) if row_id is not None else ("WHERE state = ?", (PARKED,))
        with self._lock:
            cur = self._db.execute(f"UPDATE dead_letters SET state = ?, attempts = 0, next_try = 0 {where}",
                                   (WAITING, *args))
            return int(cur.rowcount)

    def remove(self, row_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM dead_letters WHERE id = ?", (row_id,))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM dead_letters GROUP BY state").fetchall()
        return {WAITING: 0, PARKED: 0} | {str(s): int(n) for s, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, clause: str, args: tuple[object, ...]) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, error, attempts, state, first_failed, next_try FROM dead_letters "
                + clause, args).fetchall()
        return [DeadLetter(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows]
