"""The hub's durable state (SQLite, WAL): seen message ids and episodes, so a restart loses nothing.

Hot state (latest vitals, presence) lives in memory in `state.py`; what must survive a crash — every
accepted alert and phone finding, and whether it was escalated — is written here before it is acted on.
"""

from __future__ import annotations

import threading
import time
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
            CREATE TABLE IF NOT EXISTS devices (
                device_id TEXT PRIMARY KEY, patient_id TEXT, role TEXT, status TEXT,
                vitals_json TEXT, updated_at REAL NOT NULL
            );
            """
        )

    def first_time(self, message_id: str) -> bool:
        """Record a message id; False when it was seen before (a redelivery or a resend)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (message_id, time.time()))
            return cur.rowcount == 1

    def add_episode(self, row: EpisodeRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO episodes (alert_id, patient_id, device_id, trace_id, drill, alert_json,"
                " analysis_json, level, finalized, escalated, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (row.alert_id, row.patient_id, row.device_id, row.trace_id, int(row.drill), row.alert_json,
                 row.analysis_json, row.level, int(row.finalized), int(row.escalated), row.received_at),
            )

    def set_analysis(self, alert_id: str, analysis_json: str) -> None:
        with self._lock:
            self._db.execute("UPDATE episodes SET analysis_json = ? WHERE alert_id = ?", (analysis_json, alert_id))

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
                " finalized, escalated, received_at FROM episodes WHERE finalized = 0"
            ).fetchall()
        now_wall, now_mono = time.time(), time.monotonic()
        return [
            EpisodeRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], bool(r[8]), bool(r[9]),
                       now_mono - (now_wall - r[10]), r[10])
            for r in rows
        ]

    def save_vitals(self, device_id: str, patient_id: str | None, vitals_json: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO devices (device_id, patient_id, vitals_json, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(device_id) DO UPDATE SET patient_id = excluded.patient_id,"
                " vitals_json = excluded.vitals_json, updated_at = excluded.updated_at",
                (device_id, patient_id, vitals_json, time.time()),
            )

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

    def counts(self) -> dict[str, int]:
        with self._lock:
            total, finalized, escalated = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(finalized), 0), COALESCE(SUM(escalated), 0) FROM episodes"
            ).fetchone()
        return {"episodes": total, "finalized": finalized, "escalated": escalated}

    def close(self) -> None:
        with self._lock:
            self._db.close()
