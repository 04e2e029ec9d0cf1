"""Strips, findings and reports encrypted at rest: unreadable in the raw row, read back through the ORM,
rotated to a new key, and clear rows from before keys were set still readable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import Episode, Report, encryption
from cloud_expert.db.rotation import rotate
from cloud_expert.ingest import store_escalation
from cloud_expert.reports.jobs import run_report_job
from shared.messages import utcnow
from tests.cloud_expert.factories import make_escalation


@pytest.fixture(autouse=True)
def no_keys_after() -> Iterator[None]:
    yield
    encryption.configure(None)


def _raw(session: Session, sql: str, id_: str) -> str:
    return str(session.execute(text(sql), {"id": id_}).scalar_one())


def _store(sessions: sessionmaker[Session], patient: str) -> tuple[str, str]:
    with sessions() as session:
        episode, job, _ = store_escalation(session, make_escalation(site="s1", patient_id=patient), utcnow())
        session.commit()
    run_report_job(sessions, job.id, now=utcnow)
    with sessions() as session:
        report = session.query(Report).filter_by(episode_id=episode.id).one()
        return episode.id, report.id


@pytest.mark.slow
def test_encrypted_at_rest_readable_through_the_orm_and_rotated(sessions: sessionmaker[Session],
                                                                 unique: str) -> None:
    encryption.configure(None)
    clear_episode, _ = _store(sessions, f"pc{unique}")  # written before keys were set
    old, new = encryption.new_key(), encryption.new_key()
    encryption.configure(old)
    episode_id, report_id = _store(sessions, f"pe{unique}")
    with sessions() as session:
        raw_alert = _raw(session, "SELECT alert_json FROM episodes WHERE id = :id", episode_id)
        raw_html = _raw(session, "SELECT html FROM reports WHERE id = :id", report_id)
        assert "samples_b64" not in raw_alert and "$enc" in raw_alert  # the strip is not in the row
        assert raw_html.startswith("enc:v1:") and "<html" not in raw_html.lower()
        episode = session.get(Episode, episode_id)
        assert episode is not None and "strip" in episode.alert_json["payload"]
        report = session.get(Report, report_id)
        assert report is not None and "<html" in report.html.lower() and (report.pdf or b"").startswith(b"%PDF")
        clear = session.get(Episode, clear_episode)
        assert clear is not None and "strip" in clear.alert_json["payload"]  # still readable

    encryption.configure(f"{new},{old}")  # rotation: the new key first, the old one still opens
    assert rotate(sessions)["episodes"] >= 2
    encryption.configure(new)  # the old key dropped: everything opens with the new one alone
    with sessions() as session:
        assert "$enc" in _raw(session, "SELECT alert_json FROM episodes WHERE id = :id", clear_episode)
        report = session.get(Report, report_id)
        assert report is not None and "<html" in report.html.lower()

    encryption.configure(encryption.new_key())  # a wrong key is a clear error, not garbage
    with sessions() as session, pytest.raises(encryption.DataKeyError, match="no configured data key"):
        session.get(Episode, episode_id)


def test_bad_keys_are_refused() -> None:
    with pytest.raises(encryption.DataKeyError, match="keygen"):
        encryption.configure("not-a-key")
    encryption.configure("")
    assert encryption.active() is None
