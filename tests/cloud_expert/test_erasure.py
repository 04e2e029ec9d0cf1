"""`cardiomesh patient erase`: one patient's episodes, jobs and reports go, everyone else's stay, audited."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cardiomesh.cli import app
from cloud_expert.db import Episode, Erasure, Report, ReportJob, upgrade_to_head
from cloud_expert.erasure import apply_retention, erase_patient
from cloud_expert.ingest import store_escalation
from cloud_expert.reports.jobs import run_report_job
from edge_hub.store import EdgeStore, EpisodeRow
from shared.messages import utcnow
from shared.settings import get_settings
from tests.cloud_expert.factories import make_escalation


def _seed(sessions: sessionmaker[Session], patient: str, reports: int) -> list[str]:
    ids = []
    with sessions() as session:
        for i in range(2):
            episode, job, _ = store_escalation(session, make_escalation(site="s1", patient_id=patient), utcnow())
            session.commit()
            ids.append(episode.id)
            if i < reports:
                run_report_job(sessions, job.id, now=utcnow)
    return ids


def _count(session: Session, model: type, patient: str) -> int:
    ids = select(Episode.id).where(Episode.patient_id == patient)
    column = Episode.id if model is Episode else model.episode_id  # type: ignore[attr-defined]
    return int(session.scalar(select(func.count()).select_from(model).where(column.in_(ids))) or 0)


@pytest.mark.slow
def test_one_patient_is_erased_and_the_erasure_is_audited(sessions: sessionmaker[Session], unique: str) -> None:
    gone, kept = f"pgone{unique}", f"pkept{unique}"
    _seed(sessions, gone, reports=1)
    _seed(sessions, kept, reports=2)
    with sessions() as session:
        erased = erase_patient(session, gone, by="dr-a", reason="request 17", now=utcnow())
        session.commit()
    assert (erased.episodes, erased.reports, erased.jobs) == (2, 1, 2)
    with sessions() as session:
        assert [_count(session, m, gone) for m in (Episode, ReportJob, Report)] == [0, 0, 0]
        assert [_count(session, m, kept) for m in (Episode, ReportJob, Report)] == [2, 2, 2]
        audit = session.get(Erasure, erased.audit_id)
        assert audit is not None and audit.patient_id == gone and audit.erased_by == "dr-a"
        assert audit.reason == "request 17" and audit.episodes == 2
    with sessions() as session, pytest.raises(ValueError, match="who"):
        erase_patient(session, kept, by=" ", reason="x", now=utcnow())


def test_the_command_erases_the_cloud_and_an_edge_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_to_head(url)
    from cloud_expert.db import make_engine, make_session_factory

    engine = make_engine(url)
    _seed(make_session_factory(engine), "pt-x", reports=0)
    engine.dispose()
    edge = EdgeStore(tmp_path / "edge.db")
    edge.add_episode(EpisodeRow(alert_id="a1", patient_id="pt-x", device_id="watch-1", trace_id="t1", drill=False,
                                alert_json="{}", analysis_json=None, level="urgent", finalized=True, escalated=True,
                                received_mono=0.0, received_at=time.time()))
    edge.close()
    monkeypatch.setenv("CARDIOMESH_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        refused = runner.invoke(app, ["patient", "erase", "pt-x", "--by", "dr-a", "--reason", "r"], input="n\n")
        assert refused.exit_code == 1
        done = runner.invoke(app, ["patient", "erase", "pt-x", "--by", "dr-a", "--reason", "r", "--yes",
                                   "--edge-db", str(tmp_path / "edge.db")])
        assert done.exit_code == 0, done.output
        assert "cloud: 2 episode(s), 0 report(s), 2 job(s) erased" in done.output
        assert "1 episode(s) erased" in done.output
        assert EdgeStore(tmp_path / "edge.db").counts()["episodes"] == 0
        missing = runner.invoke(app, ["patient", "erase", "pt-x", "--by", "a", "--reason", "r", "--yes",
                                      "--edge-db", str(tmp_path / "nope.db")])
        assert missing.exit_code == 1 and "no edge store" in missing.output
    finally:
        get_settings.cache_clear()


def _seed_at(sessions: sessionmaker[Session], site: str, patient: str, received: datetime) -> None:
    with sessions() as session:
        store_escalation(session, make_escalation(site=site, patient_id=patient), received)
        session.commit()


@pytest.mark.slow
def test_retention_deletes_what_is_older_than_the_period_on_its_site_and_audits_each_patient(
        sessions: sessionmaker[Session], unique: str) -> None:
    site, other_site = f"ret{unique}", f"keep{unique}"
    now = utcnow()
    _seed_at(sessions, site, f"pa{unique}", now - timedelta(days=400))
    _seed_at(sessions, site, f"pa{unique}", now - timedelta(days=2))  # recent: stays
    _seed_at(sessions, site, f"pb{unique}", now - timedelta(days=500))
    _seed_at(sessions, other_site, f"pc{unique}", now - timedelta(days=900))  # another site: not in scope
    with sessions() as session:
        erased = apply_retention(session, before=now - timedelta(days=365), by="records", site=site)
        session.commit()
    assert sorted(e.episodes for e in erased) == [1, 1]
    with sessions() as session:
        left = dict(session.execute(select(Episode.patient_id, func.count()).where(
            Episode.site.in_([site, other_site])).group_by(Episode.patient_id)).all())
        assert left == {f"pa{unique}": 1, f"pc{unique}": 1}
        audits = session.scalars(select(Erasure).where(Erasure.id.in_([e.audit_id for e in erased]))).all()
        assert {a.patient_id for a in audits} == {f"pa{unique}", f"pb{unique}"}
        assert all(a.reason.startswith("retention: received before") and a.erased_by == "records" for a in audits)


def test_the_edge_prunes_old_finalized_episodes_and_seen_ids_but_never_an_open_episode(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "edge.db")
    old = time.time() - 40 * 86400

    def row(alert_id: str, *, finalized: bool, at: float) -> EpisodeRow:
        return EpisodeRow(alert_id=alert_id, patient_id="pt-x", device_id="watch-1", trace_id=alert_id, drill=False,
                          alert_json="{}", analysis_json=None, level="urgent", finalized=finalized,
                          escalated=finalized, received_mono=0.0, received_at=at)

    edge.add_episode(row("old-final", finalized=True, at=old))
    edge.add_episode(row("old-open", finalized=False, at=old))
    edge.add_episode(row("new-final", finalized=True, at=time.time()))
    edge.accept_analysis("m-1", "new-final", "{}")
    assert edge.prune(episodes_before=time.time() - 30 * 86400, seen_before=time.time() + 1) == (1, 1)
    assert edge.counts()["episodes"] == 2 and edge.responded("old-open") is False
    edge.close()


def test_the_retention_command_prunes_the_cloud_and_an_edge_store(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    upgrade_to_head(url)
    from cloud_expert.db import make_engine, make_session_factory

    engine = make_engine(url)
    _seed_at(make_session_factory(engine), "s1", "pt-old", utcnow() - timedelta(days=100))
    _seed_at(make_session_factory(engine), "s1", "pt-new", utcnow())
    engine.dispose()
    monkeypatch.setenv("CARDIOMESH_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["retention", "--days", "30", "--by", "ops"], input="n\n").exit_code == 1
        done = runner.invoke(app, ["retention", "--days", "30", "--by", "ops", "--yes",
                                   "--edge-db", str(tmp_path / "edge.db")])
        assert done.exit_code == 1 and "no edge store" in done.output
        EdgeStore(tmp_path / "edge.db").close()
        done = runner.invoke(app, ["retention", "--days", "30", "--by", "ops", "--yes",
                                   "--edge-db", str(tmp_path / "edge.db")])
        assert done.exit_code == 0, done.output
        assert "cloud: 1 episode(s), 0 report(s) of 1 patient(s) deleted" in done.output
        assert "0 finalized episode(s), 0 seen id(s) deleted" in done.output
        bad = runner.invoke(app, ["retention", "--days", "0", "--by", "ops", "--yes"])
        assert bad.exit_code == 2  # typer's usage error: a retention of zero days is refused
    finally:
        get_settings.cache_clear()
