"""Alerts the watch sent and its edge has not yet answered: kept (SQLite) and sent again until it does.

The outbox lets a message go on the broker's PUBACK, but the broker acknowledges a QoS 1 publish before it
has saved it: a broker killed in that window loses an alert queued for an absent edge. So an alert is
done only when the edge says it holds it (`alert_received`, a signed command the hub sends for every alert
it accepted, the first time and on every duplicate). Until then the same bytes — same message id, so the
hub's dedupe makes a resend harmless — go out again after 30 s, 60 s, … at most every 5 min, and after a
restart. An alert older than the bus's age window (`shared.transport.freshness`) would be refused as stale:
it is given up, loudly.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared.sqlite import open_local_db
from shared.transport.freshness import DEFAULT_MAX_AGE_S

log = logging.getLogger(__name__)

FIRST_RESEND_S = 30.0
MAX_RESEND_S = 300.0


@dataclass(frozen=True, slots=True)
class Unanswered:
    alert_id: str
    topic: str
    payload: bytes
    attempts: int


class AwaitingAnswers:
    def __init__(self, path: Path | str = ":memory:", *, first_resend_s: float = FIRST_RESEND_S,
                 max_resend_s: float = MAX_RESEND_S, give_up_s: float = DEFAULT_MAX_AGE_S) -> None:
        self._lock = threading.Lock()
        self._db = open_local_db(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS awaiting (alert_id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT"
            " NULL, sent_at REAL NOT NULL, next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1)")
        self.first_resend_s, self.max_resend_s, self.give_up_s = first_resend_s, max_resend_s, give_up_s

    def add(self, alert_id: str, topic: str, payload: bytes, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO awaiting (alert_id, topic, payload, sent_at, next_at)"
                             " VALUES (?, ?, ?, ?, ?)", (alert_id, topic, payload, now, now + self.first_resend_s))

    def answered(self, alert_id: str) -> bool:
        """The edge holds it: forget it. True when it was still awaited."""
        with self._lock:
            return self._db.execute("DELETE FROM awaiting WHERE alert_id = ?", (alert_id,)).rowcount == 1

    def due(self, now: float | None = None) -> tuple[list[Unanswered], list[str]]:
        """(alerts to send again now, their next try pushed back; alert ids given up as too old to deliver)."""
        now = time.time() if now is None else now
        with self._lock:
            expired = [r[0] for r in self._db.execute("SELECT alert_id FROM awaiting WHERE sent_at < ?",
                                                      (now - self.give_up_s,)).fetchall()]
            self._db.execute("DELETE FROM awaiting WHERE sent_at < ?", (now - self.give_up_s,))
            rows = self._db.execute("SELECT alert_id, topic, payload, attempts FROM awaiting WHERE next_at <= ?"
                                    " ORDER BY sent_at", (now,)).fetchall()
            for alert_id, _topic, _payload, attempts in rows:
                wait = min(self.max_resend_s, self.first_resend_s * 2 ** attempts)
                self._db.execute("UPDATE awaiting SET attempts = attempts + 1, next_at = ? WHERE alert_id = ?",
                                 (now + wait, alert_id))
        return [Unanswered(r[0], r[1], bytes(r[2]), r[3]) for r in rows], expired

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM awaiting").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
