"""The hub's durable state (SQLite, WAL): seen message ids and episodes, so a restart loses nothing.

Hot state (latest vitals, presence) lives in memory in `state.py`; what must survive a crash — every
accepted alert and phone finding, and whether it was escalated — is written here before it is acted on.

A message id is marked seen in the same transaction as the row it produces (`accept_alert`,
`accept_analysis`): killed between the two, the hub used to drop the broker's redelivery as a duplicate
and lose the alert. `responded` records that an episode's initial responses went out, so an episode
recovered after a crash sends the ones it missed.

An episode is also keyed by its clinical event (`event_key`: patient, device, alert kind, onset in stream
time, drill or not): a watch that re-detects an event after a restart mints a new `alert_id` for it, and
without this key the hub would triage, command and escalate one event twice. The re-sent alert's id
becomes an *alias* of the first, so findings a phone publishes for it still reach the one episode.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.sqlite import open_local_db


@dataclass(slots=True)
class EpisodeRow:
    alert_id: str
    patient_id: str
    device_id: str
    trace_id: str
    drill: bool
    alert_json: str
    analysis_json: str | None
    level: str
    finalized: bool
    escalated: bool
    received_mono: float
    received_at: float
    responded: bool = False
    event_key: str | None = None


#: How long a re-sent clinical event folds into its first episode. A replayed stream restarts its clock, so
#: an event key seen again days later (same onset by chance) is a new event, not the old one re-sent.
SAME_EVENT_WINDOW_S = 6 * 3600.0


def event_key(*, patient_id: str, device_id: str, kind: str, onset_s: float, drill: bool) -> str:
    """The clinical event an alert reports, independent of the message and alert ids it was sent under."""
    return f"{patient_id}|{device_id}|{kind}|{onset_s:.1f}|{'drill' if drill else 'clinical'}"


@dataclass(frozen=True, slots=True)
class Accepted:
    """What `accept_alert` made of a message: "new", "duplicate" (this message id again) or "same_event" (a
    new message or alert id for an event already held); `alert_id` is the episode's own id."""

    outcome: str
    alert_id: str


class EdgeStore:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = open_local_db(path)
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS episodes (
                alert_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, device_id TEXT NOT NULL,
                trace_id TEXT NOT NULL, drill INTEGER NOT NULL, alert_json TEXT NOT NULL,
                analysis_json TEXT, level TEXT NOT NULL, finalized INTEGER NOT NULL DEFAULT 0,
                escalated INTEGER NOT NULL DEFAULT 0, received_at REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS episodes_open ON episodes (finalized);
            CREATE TABLE IF NOT EXISTS aliases (alert_id TEXT PRIMARY KEY, episode TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS devices (
                device_id TEXT PRIMARY KEY, patient_id TEXT, role TEXT, status TEXT,
                vitals_json TEXT, updated_at REAL NOT NULL
            );
            """
        )
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(episodes)").fetchall()}
        if "responded" not in columns:  # a hub DB from before responses were tracked: those were all sent
            self._db.execute("ALTER TABLE episodes ADD COLUMN responded INTEGER NOT NULL DEFAULT 1")
        if "event_key" not in columns:
            self._db.execute("ALTER TABLE episodes ADD COLUMN event_key TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS episodes_event ON episodes (event_key)")

    @contextmanager
    def _first_time(self, message_id: str) -> Iterator[bool]:
        """A transaction that marks `message_id` seen; yields False (and rolls back) when it was seen before.
        What the caller writes inside commits with the mark, or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)",
                                    (message_id, time.time())).rowcount != 1:
                    self._db.execute("ROLLBACK")
                    yield False
                    return
                yield True
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _insert_episode(self, row: EpisodeRow) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO episodes (alert_id, patient_id, device_id, trace_id, drill, alert_json,"
            " analysis_json, level, finalized, escalated, received_at, responded, event_key)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row.alert_id, row.patient_id, row.device_id, row.trace_id, int(row.drill), row.alert_json,
             row.analysis_json, row.level, int(row.finalized), int(row.escalated), row.received_at,
             int(row.responded), row.event_key),
        )
        return cur.rowcount == 1

    def _episode_of(self, alert_id: str) -> str:
        row = self._db.execute("SELECT episode FROM aliases WHERE alert_id = ?", (alert_id,)).fetchone()
        return str(row[0]) if row else alert_id

    def accept_alert(self, message_id: str, row: EpisodeRow) -> Accepted:
        """Seen and episode in one transaction. A message id seen before is a "duplicate"; an alert id or a
        clinical event already held is the "same_event": one event, one episode, one response."""
        with self._first_time(message_id) as first:
            if not first:
                return Accepted("duplicate", self._episode_of(row.alert_id))
            held = self._episode_of(row.alert_id)
            if self._db.execute("SELECT 1 FROM episodes WHERE alert_id = ?", (held,)).fetchone():
                return Accepted("same_event", held)
            if row.event_key is not None:
                same = self._db.execute(
                    "SELECT alert_id FROM episodes WHERE event_key = ? AND received_at > ? ORDER BY received_at"
                    " LIMIT 1", (row.event_key, row.received_at - SAME_EVENT_WINDOW_S)).fetchone()
                if same is not None:
                    self._db.execute("INSERT OR IGNORE INTO aliases (alert_id, episode) VALUES (?, ?)",
                                     (row.alert_id, same[0]))
                    return Accepted("same_event", str(same[0]))
            self._insert_episode(row)
            return Accepted("new", row.alert_id)

    def episode_of(self, alert_id: str) -> str:
        """The episode an alert id belongs to: itself, or the first alert of the same clinical event."""
        with self._lock:
            return self._episode_of(alert_id)

    def accept_analysis(self, message_id: str, alert_id: str, analysis_json: str) -> bool:
        """Seen and the episode's findings in one transaction; False for a message id seen before. Findings
        for an alias fill the episode only when it has none of its own."""
        with self._first_time(message_id) as first:
            if first:
                episode = self._episode_of(alert_id)
                self._db.execute("UPDATE episodes SET analysis_json = ? WHERE alert_id = ?"
                                 + ("" if episode == alert_id else " AND analysis_json IS NULL"),
                                 (analysis_json, episode))
            return first

    def add_episode(self, row: EpisodeRow) -> None:
        """An episode without a message id to mark (tests, imports); `accept_alert` is the handler's path."""
        with self._lock:
            self._insert_episode(row)

    def responded(self, alert_id: str) -> bool | None:
        """Whether an open episode's initial responses went out; None when no open episode has this id."""
        with self._lock:
            row = self._db.execute("SELECT responded FROM episodes WHERE alert_id = ? AND finalized = 0",
                                   (alert_id,)).fetchone()
        return None if row is None else bool(row[0])

    def finalized(self, alert_id: str) -> bool:
        """Whether this episode is held and already finalized (findings for it now come too late)."""
        with self._lock:
            row = self._db.execute("SELECT finalized FROM episodes WHERE alert_id = ?", (alert_id,)).fetchone()
        return bool(row and row[0])

    def mark_responded(self, alert_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE episodes SET responded = 1 WHERE alert_id = ?", (alert_id,))

    def finalize(self, alert_id: str, level: str, escalated: bool) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE episodes SET level = ?, finalized = 1, escalated = ? WHERE alert_id = ?",
                (level, int(escalated), alert_id),
            )

    def open_episodes(self) -> list[EpisodeRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_id, patient_id, device_id, trace_id, drill, alert_json, analysis_json, level,"
                " finalized, escalated, received_at, responded FROM episodes WHERE finalized = 0"
            ).fetchall()
        now_wall, now_mono = time.time(), time.monotonic()
        return [
            EpisodeRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], bool(r[8]), bool(r[9]),
                       now_mono - (now_wall - r[10]), r[10], bool(r[11]))
            for r in rows
        ]

    def save_vitals(self, device_id: str, patient_id: str | None, vitals_json: str) -> None:
        self.save_vitals_many([(device_id, patient_id, vitals_json)])

    def save_vitals_many(self, rows: list[tuple[str, str | None, str]]) -> None:
        """Each device's latest vitals, many devices in one transaction (the edge batches them: one write
        per message was a fifth of its cost per vitals at 1,000 watches)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO devices (device_id, patient_id, vitals_json, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT(device_id) DO UPDATE SET patient_id = excluded.patient_id,"
                    " vitals_json = excluded.vitals_json, updated_at = excluded.updated_at",
                    [(d, p, v, now) for d, p, v in rows],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def save_presence(self, device_id: str, patient_id: str | None, role: str, status: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO devices (device_id, patient_id, role, status, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET patient_id = excluded.patient_id, role = excluded.role,"
                " status = excluded.status, updated_at = excluded.updated_at",
                (device_id, patient_id, role, status, time.time()),
            )

    def devices(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """(device_id, role, status, latest vitals JSON) for every device the hub has heard from."""
        with self._lock:
            return list(self._db.execute("SELECT device_id, role, status, vitals_json FROM devices").fetchall())

    def erase_patient(self, patient_id: str) -> int:
        """Delete a patient's episodes and device rows from this hub; the number of episodes deleted. Seen
        message ids stay: they hold nothing of the person and keep a redelivery from coming back."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM aliases WHERE episode IN"
                                 " (SELECT alert_id FROM episodes WHERE patient_id = ?)", (patient_id,))
                gone = self._db.execute("DELETE FROM episodes WHERE patient_id = ?", (patient_id,)).rowcount
                self._db.execute("DELETE FROM devices WHERE patient_id = ?", (patient_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(gone)

    def prune(self, *, episodes_before: float, seen_before: float) -> tuple[int, int]:
        """Retention: delete finalized episodes received before `episodes_before` (open ones stay, whatever
        their age) and seen ids older than `seen_before` (wall-clock seconds). Seen ids may go once the bus
        refuses messages that old as stale (`shared.transport.freshness`). (episodes, ids) deleted."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                old = "SELECT alert_id FROM episodes WHERE finalized = 1 AND received_at < ?"
                self._db.execute(f"DELETE FROM aliases WHERE episode IN ({old})", (episodes_before,))
                episodes = self._db.execute(f"DELETE FROM episodes WHERE alert_id IN ({old})",
                                            (episodes_before,)).rowcount
                seen = self._db.execute("DELETE FROM seen WHERE at < ?", (seen_before,)).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(episodes), int(seen)

    def counts(self) -> dict[str, int]:
        with self._lock:
            total, finalized, escalated = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(finalized), 0), COALESCE(SUM(escalated), 0) FROM episodes"
            ).fetchone()
        return {"episodes": total, "finalized": finalized, "escalated": escalated}

    def close(self) -> None:
        with self._lock:
            self._db.close()
