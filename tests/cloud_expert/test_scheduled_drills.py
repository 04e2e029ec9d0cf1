"""A scheduled drill (`cardiomesh drill schedule`) is kept in its site's drill history like a dashboard one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cardiomesh.drill import DrillResult, HopLine
from cloud_expert.db import AuditEntry, DrillRun
from cloud_expert.drills import run_scheduled
from shared.settings import Settings

NOW = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)


def test_a_scheduled_drill_is_kept_in_the_sites_history(sqlite_sessions: sessionmaker[Session]) -> None:
    def runner(settings: Settings, scenario: str, **_kw: object) -> DrillResult:
        result = DrillResult(trace_id="t" * 32, watch_id="watch-1")
        result.hops += [HopLine("watch alert", "watch-1", NOW), HopLine("edge response", "edge-1", NOW),
                        HopLine("edge triage (initial)", "edge-1", NOW)]
        return result

    run_id = run_scheduled(sqlite_sessions, Settings(site="home-s"), scenario="vt", runner=runner)
    with sqlite_sessions() as session:
        run = session.get(DrillRun, run_id)
        assert run is not None and (run.site, run.requested_by, run.status) == ("home-s", "scheduler", "passed")
        assert any("PASS  detection → edge response" in line for line in run.lines)
        assert session.scalars(select(AuditEntry.action).where(AuditEntry.target == run_id)).all() == [
            "drill_scheduled"]
